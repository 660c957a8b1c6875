//! Oracle: our host driver (`keygate::device::Device`) against a software authenticator we did
//! not write, 1Password's `passkey-authenticator` 0.6 (a CTAP 2.0 authenticator, ES256).
//!
//! The adapter below serves it behind our CTAPHID device framing on `hid::pair()`. Requests are
//! decoded with passkey-types' own serde/ciborium implementations of the CTAP2 request types and
//! its replies encoded the same way, so none of our `ctap2` codec sits on the device side: what
//! the driver sends must be understood by, and what it parses must come from, outside code.
//! Our side checks the results with `ctap2::AuthenticatorData` and verifies the ES256 signatures
//! with p256 against the credential public key from the attested credential data.
//!
//! The only parts written here are the ones passkey-authenticator leaves to its embedder: a
//! `CredentialStore` (credentials in memory, bound to their RP ID, discoverable ones found
//! without an allow list) and a `UserValidationMethod` that grants presence when asked and
//! counts how often it was asked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use keygate::ctap2::commands::{get_assertion, make_credential};
use keygate::ctap2::{
    AttestationStatement, AuthenticatorData, CoseKey, PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
    StatusCode,
};
use keygate::ctaphid::device::{DeviceConfig, DeviceEvent, DeviceFraming};
use keygate::ctaphid::{Capabilities, HidCmd};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::{self, ReportPipe};
use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};
use passkey_authenticator::{
    Authenticator, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint, UserCheck,
    UserValidationMethod,
};
use passkey_crypto::rust_crypto::RustCryptoBackend;
use passkey_types::Passkey;
use passkey_types::ctap2::{
    Aaguid, Ctap2Error, StatusCode as PkStatus, get_assertion as pk_ga, make_credential as pk_mc,
};
use passkey_types::webauthn::PublicKeyCredentialDescriptor as PkDescriptor;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const AAGUID: [u8; 16] = *b"keygate-oracle-1";
const RP_ID: &str = "oracle.example";

/// Credentials in memory, keyed by credential ID; each bound to its RP ID.
#[derive(Default)]
struct RpStore(HashMap<Vec<u8>, Passkey>);

#[async_trait::async_trait]
impl CredentialStore for RpStore {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        ids: Option<&[PkDescriptor]>,
        rp_id: &str,
        _user_handle: Option<&[u8]>,
    ) -> Result<Vec<Passkey>, PkStatus> {
        let found: Vec<Passkey> = self
            .0
            .values()
            .filter(|pk| pk.rp_id == rp_id)
            .filter(|pk| match ids {
                Some(ids) => ids.iter().any(|d| d.id[..] == pk.credential_id[..]),
                None => pk.user_handle.is_some(),
            })
            .cloned()
            .collect();
        if found.is_empty() {
            Err(Ctap2Error::NoCredentials.into())
        } else {
            Ok(found)
        }
    }

    async fn save_credential(
        &mut self,
        cred: Passkey,
        _user: pk_mc::PublicKeyCredentialUserEntity,
        _rp: pk_mc::PublicKeyCredentialRpEntity,
        _options: pk_mc::Options,
    ) -> Result<(), PkStatus> {
        self.0.insert(cred.credential_id.to_vec(), cred);
        Ok(())
    }

    async fn update_credential(&mut self, cred: &Passkey) -> Result<(), PkStatus> {
        self.0.insert(cred.credential_id.to_vec(), cred.clone());
        Ok(())
    }

    async fn get_info(&self) -> StoreInfo {
        StoreInfo {
            discoverability: DiscoverabilitySupport::Full,
        }
    }
}

/// Grants user presence whenever asked; no user verification. Counts the checks.
#[derive(Clone, Default)]
struct AutoPresence {
    checks: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl UserValidationMethod for AutoPresence {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        Ok(UserCheck {
            presence,
            verification: false,
        })
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        None
    }
}

type Oracle = Authenticator<RpStore, AutoPresence, RustCryptoBackend>;

fn to_cbor<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, PkStatus> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).map_err(|_| PkStatus::from(Ctap2Error::Other))?;
    Ok(out)
}

fn from_cbor<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, PkStatus> {
    ciborium::de::from_reader(body).map_err(|_| PkStatus::from(Ctap2Error::InvalidCbor))
}

/// One CTAPHID_CBOR request (command byte + CBOR) → status byte + CBOR, all in passkey-types.
async fn dispatch(authn: &mut Oracle, request: &[u8]) -> Vec<u8> {
    let Some((&command, body)) = request.split_first() else {
        return vec![u8::from(Ctap2Error::InvalidLength)];
    };
    let reply = match command {
        0x01 => match from_cbor::<pk_mc::Request>(body) {
            Ok(req) => match authn.make_credential(req).await {
                Ok(resp) => to_cbor(&resp),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        0x02 => match from_cbor::<pk_ga::Request>(body) {
            Ok(req) => match authn.get_assertion(req).await {
                Ok(resp) => to_cbor(&resp),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        0x04 => to_cbor(&*authn.get_info().await),
        _ => Err(Ctap2Error::InvalidCommand.into()),
    };
    match reply {
        Ok(cbor) => [&[0x00][..], &cbor].concat(),
        Err(status) => vec![u8::from(status)],
    }
}

/// The device end: our `DeviceFraming` in front of passkey-authenticator. Ends when the host
/// closes the pipe.
async fn serve_passkey(mut pipe: impl ReportPipe, mut authn: Oracle) {
    let mut framing = DeviceFraming::new(DeviceConfig {
        // CTAP2 only: passkey-authenticator has no CTAP1/U2F, so NMSG.
        capabilities: Capabilities::CBOR | Capabilities::NMSG,
        ..DeviceConfig::default()
    });
    let mut next_cid = 0x0ac1_e000u32;
    let mut rng = move || {
        next_cid += 1;
        next_cid
    };
    loop {
        let deadline = framing.next_deadline();
        let report = tokio::select! {
            received = pipe.recv() => match received {
                Ok(report) => report,
                Err(_) => return,
            },
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            } => {
                for out in framing.poll_timeout(Instant::now()) {
                    if pipe.send(&out).await.is_err() { return; }
                }
                continue;
            }
        };
        let mut replies = Vec::new();
        for event in framing.push(&report, Instant::now(), &mut rng) {
            match event {
                DeviceEvent::Send(out) => replies.push(out),
                DeviceEvent::Request { cid, cmd, payload } => {
                    let answer = if cmd == HidCmd::CBOR {
                        dispatch(&mut authn, &payload).await
                    } else {
                        vec![0x6d, 0x00] // SW_INS_NOT_SUPPORTED; unreachable with NMSG
                    };
                    replies.extend(framing.respond(cid, cmd, &answer));
                }
                DeviceEvent::Cancel(_) | DeviceEvent::Wink(_) => {}
            }
        }
        for out in &replies {
            if pipe.send(out).await.is_err() {
                return;
            }
        }
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn options(pairs: &[(&str, bool)]) -> Option<BTreeMap<String, bool>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
}

fn descriptor(id: &[u8]) -> PublicKeyCredentialDescriptor {
    PublicKeyCredentialDescriptor {
        type_: "public-key".into(),
        id: id.to_vec(),
        transports: None,
    }
}

fn assertion_request(cdh: &[u8], allow: Option<Vec<Vec<u8>>>) -> get_assertion::Request {
    get_assertion::Request {
        rp_id: RP_ID.into(),
        client_data_hash: cdh.to_vec(),
        allow_list: allow.map(|ids| ids.iter().map(|id| descriptor(id)).collect()),
        ..Default::default()
    }
}

fn verify(key: &VerifyingKey, auth_data: &[u8], cdh: &[u8], der_sig: &[u8]) -> bool {
    let Ok(sig) = Signature::from_der(der_sig) else {
        return false;
    };
    key.verify(&[auth_data, cdh].concat(), &sig).is_ok()
}

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

#[tokio::test]
async fn our_driver_against_passkey_authenticator() {
    let presence = AutoPresence::default();
    let checks = presence.checks.clone();
    let mut authn = Authenticator::new(
        Aaguid::from(AAGUID),
        RpStore::default(),
        presence,
        RustCryptoBackend,
    );
    authn.set_make_credentials_with_signature_counter(true);
    let (host, device_end) = hid::pair();
    let server = tokio::spawn(serve_passkey(device_end, authn));

    // Open: CTAPHID_INIT on the broadcast channel, then authenticatorGetInfo.
    let mut device = Device::open(host, DeviceOptions::default()).await.unwrap();
    assert!(device.capabilities().contains(Capabilities::CBOR));
    assert!(!device.capabilities().supports_msg());
    assert!(device.is_ctap2());
    let info = device.info().expect("getInfo was read at open").clone();
    assert!(info.versions.iter().any(|v| v == "FIDO_2_0"), "{info:?}");
    assert_eq!(info.aaguid, AAGUID);
    let info_options = info.options.clone().unwrap_or_default();
    assert_eq!(info_options.get("rk"), Some(&true), "{info:?}");
    assert_eq!(info_options.get("up"), Some(&true), "{info:?}");
    assert_eq!(info_options.get("uv"), None, "no built-in UV: {info:?}");
    assert!(
        info.algorithms
            .as_ref()
            .is_some_and(|algs| algs.iter().any(|a| a.alg == -7 && a.type_ == "public-key")),
        "ES256 advertised: {info:?}"
    );

    // MakeCredential, ES256, resident key.
    let user_id = b"oracle-user-0001".to_vec();
    let mc_cdh = sha256(b"oracle makeCredential clientData");
    let mc = make_credential::Request {
        client_data_hash: mc_cdh.clone(),
        rp: PublicKeyCredentialRpEntity {
            id: RP_ID.into(),
            name: Some("Oracle RP".into()),
        },
        user: PublicKeyCredentialUserEntity {
            id: user_id.clone(),
            name: Some("alice@oracle.example".into()),
            display_name: Some("Alice".into()),
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters {
            type_: "public-key".into(),
            alg: -7,
        }],
        options: options(&[("rk", true)]),
        ..Default::default()
    };
    let cancel = CancellationToken::new();
    let created = device
        .make_credential(&mc, &cancel, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(created.att_stmt, AttestationStatement::None, "fmt none");
    let mc_auth = AuthenticatorData::parse(&created.auth_data).unwrap();
    assert_eq!(mc_auth.rp_id_hash.to_vec(), sha256(RP_ID.as_bytes()));
    assert_eq!(mc_auth.flags.0 & (FLAG_UP | FLAG_AT), FLAG_UP | FLAG_AT);
    assert_eq!(mc_auth.flags.0 & (FLAG_UV | FLAG_ED), 0);
    assert_eq!(mc_auth.sign_count, 0);
    let acd = mc_auth
        .attested_credential_data
        .clone()
        .expect("attested credential data");
    assert_eq!(acd.aaguid, AAGUID);
    assert!(acd.credential_id.len() >= 16, "{}", acd.credential_id.len());
    assert!(
        matches!(acd.credential_public_key, CoseKey::P256 { .. }),
        "{:?}",
        acd.credential_public_key
    );
    assert_eq!(acd.credential_public_key.alg(), Some(-7));
    // Our parser must consume exactly what passkey-authenticator wrote.
    assert_eq!(mc_auth.to_bytes(), created.auth_data);
    let public = acd.credential_public_key.to_p256().unwrap();
    let key = VerifyingKey::from(&public);
    let cred_id = acd.credential_id.clone();

    // GetAssertion with an allow list.
    let ga_cdh = sha256(b"oracle getAssertion clientData 1");
    let asserted = device
        .get_assertion(
            &assertion_request(&ga_cdh, Some(vec![cred_id.clone()])),
            &cancel,
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        asserted.credential.as_ref().map(|c| c.id.clone()),
        Some(cred_id.clone())
    );
    let ga_auth = AuthenticatorData::parse(&asserted.auth_data).unwrap();
    assert_eq!(ga_auth.rp_id_hash.to_vec(), sha256(RP_ID.as_bytes()));
    assert_eq!(ga_auth.flags.0 & (FLAG_UP | FLAG_UV | FLAG_AT), FLAG_UP);
    assert!(ga_auth.attested_credential_data.is_none());
    assert_eq!(ga_auth.sign_count, 1);
    assert!(verify(
        &key,
        &asserted.auth_data,
        &ga_cdh,
        &asserted.signature
    ));
    // The check can fail: another clientDataHash, or other authenticator data, does not verify.
    assert!(!verify(
        &key,
        &asserted.auth_data,
        &mc_cdh,
        &asserted.signature
    ));
    assert!(!verify(
        &key,
        &created.auth_data[..37],
        &ga_cdh,
        &asserted.signature
    ));

    // Discoverable: no allow list; the resident credential and its user handle come back.
    let ga2_cdh = sha256(b"oracle getAssertion clientData 2");
    let discovered = device
        .get_assertion(&assertion_request(&ga2_cdh, None), &cancel, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        discovered.credential.as_ref().map(|c| c.id.clone()),
        Some(cred_id.clone())
    );
    assert_eq!(
        discovered.user.as_ref().map(|u| u.id.clone()),
        Some(user_id)
    );
    let ga2_auth = AuthenticatorData::parse(&discovered.auth_data).unwrap();
    assert_eq!(ga2_auth.sign_count, 2, "counter increases per assertion");
    assert!(verify(
        &key,
        &discovered.auth_data,
        &ga2_cdh,
        &discovered.signature
    ));

    // Negative: an unknown credential → CTAP2_ERR_NO_CREDENTIALS through our driver.
    let unknown = device
        .get_assertion(
            &assertion_request(&ga_cdh, Some(vec![vec![0x5a; 32]])),
            &cancel,
            &mut |_| {},
        )
        .await
        .expect_err("unknown credential must fail");
    assert_eq!(
        unknown.status(),
        Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS),
        "{unknown:?}"
    );

    // The driver still works after the error, and the failed request did not touch the counter.
    let ga3_cdh = sha256(b"oracle getAssertion clientData 3");
    let again = device
        .get_assertion(
            &assertion_request(&ga3_cdh, Some(vec![cred_id])),
            &cancel,
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        AuthenticatorData::parse(&again.auth_data)
            .unwrap()
            .sign_count,
        3
    );
    assert!(verify(&key, &again.auth_data, &ga3_cdh, &again.signature));

    // passkey-authenticator asked for presence once per MakeCredential / GetAssertion.
    assert_eq!(checks.load(Ordering::SeqCst), 5);

    drop(device);
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("device end stops when the host closes the pipe")
        .unwrap();
}
