//! Attestation material: a generated CA and a batch certificate (X.509 v3, DER written by hand),
//! meeting the FIDO requirements for packed attestation certificates (WebAuthn §8.2.1):
//! version 3; subject C, O, OU = "Authenticator Attestation", CN; basic constraints CA = false;
//! the AAGUID in extension 1.3.6.1.4.1.45724.1.1.4 (id-fido-gen-ce-aaguid), not critical.

use p256::ecdsa::SigningKey;

use crate::authenticator::AuthnError;
use crate::authenticator::keys::{self, RandomSource, bytes_serde};
use crate::secret::Secret;

/// The CA and batch certificate of a key, and the batch private key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AttestationMaterial {
    /// The AAGUID in the batch certificate's id-fido-gen-ce-aaguid extension.
    pub aaguid: [u8; 16],
    /// DER of the self-signed CA certificate (the trust anchor a relying party would configure).
    #[serde(with = "bytes_serde")]
    pub ca_cert: Vec<u8>,
    /// DER of the batch (attestation) certificate, signed by the CA.
    #[serde(with = "bytes_serde")]
    pub batch_cert: Vec<u8>,
    /// The batch certificate's P-256 private scalar.
    #[serde(with = "bytes_serde::secret")]
    pub batch_key: Secret<Vec<u8>>,
    /// The enterprise attestation certificate: like the batch one, but naming this key alone
    /// (absent in keys stored before enterprise attestation existed).
    #[serde(default)]
    pub enterprise: Option<EnterpriseMaterial>,
}

/// A certificate unique to one key, for enterprise attestation (CTAP 2.1 §7.1), and its key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EnterpriseMaterial {
    /// DER of the certificate, signed by the CA; its CN carries a serial unique to this key.
    #[serde(with = "bytes_serde")]
    pub cert: Vec<u8>,
    /// Its P-256 private scalar.
    #[serde(with = "bytes_serde::secret")]
    pub key: Secret<Vec<u8>>,
}

// OIDs (content bytes).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_COUNTRY: &[u8] = &[0x55, 0x04, 0x06];
const OID_ORG: &[u8] = &[0x55, 0x04, 0x0a];
const OID_ORG_UNIT: &[u8] = &[0x55, 0x04, 0x0b];
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
/// 1.3.6.1.4.1.45724.1.1.4 id-fido-gen-ce-aaguid.
const OID_FIDO_AAGUID: &[u8] = &[
    0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xe5, 0x1c, 0x01, 0x01, 0x04,
];

/// One DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(content: &[u8]) -> Vec<u8> {
    tlv(0x06, content)
}

/// A positive INTEGER from big-endian bytes.
fn uint(bytes: &[u8]) -> Vec<u8> {
    let mut start = 0;
    while start + 1 < bytes.len() && bytes[start] == 0 {
        start += 1;
    }
    let mut content = Vec::new();
    if bytes[start..].first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&bytes[start..]);
    tlv(0x02, &content)
}

fn name(country: &str, org: &str, org_unit: Option<&str>, common_name: &str) -> Vec<u8> {
    let rdn = |attr: &[u8], tag: u8, value: &str| {
        tlv(0x31, &seq(&[&oid(attr), &tlv(tag, value.as_bytes())]))
    };
    let mut parts = vec![rdn(OID_COUNTRY, 0x13, country), rdn(OID_ORG, 0x0c, org)];
    if let Some(ou) = org_unit {
        parts.push(rdn(OID_ORG_UNIT, 0x0c, ou));
    }
    parts.push(rdn(OID_COMMON_NAME, 0x0c, common_name));
    tlv(0x30, &parts.concat())
}

fn spki(key: &SigningKey) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(&keys::public_sec1(key));
    seq(&[
        &seq(&[&oid(OID_EC_PUBLIC_KEY), &oid(OID_PRIME256V1)]),
        &tlv(0x03, &bits),
    ])
}

fn extension(id: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        seq(&[&oid(id), &tlv(0x01, &[0xff]), &tlv(0x04, value)])
    } else {
        seq(&[&oid(id), &tlv(0x04, value)])
    }
}

struct CertSpec<'a> {
    serial: [u8; 16],
    issuer: Vec<u8>,
    subject: Vec<u8>,
    subject_key: &'a SigningKey,
    issuer_key: &'a SigningKey,
    ca: bool,
    aaguid: Option<[u8; 16]>,
}

fn certificate(spec: &CertSpec<'_>) -> Vec<u8> {
    let sig_alg = seq(&[&oid(OID_ECDSA_SHA256)]);
    let validity = seq(&[&tlv(0x17, b"240101000000Z"), &tlv(0x18, b"20991231235959Z")]);
    let basic = if spec.ca {
        seq(&[&tlv(0x01, &[0xff])])
    } else {
        seq(&[])
    };
    let mut exts = vec![extension(OID_BASIC_CONSTRAINTS, true, &basic)];
    if spec.ca {
        // keyCertSign | cRLSign
        exts.push(extension(OID_KEY_USAGE, true, &tlv(0x03, &[0x01, 0x06])));
    }
    if let Some(aaguid) = spec.aaguid {
        exts.push(extension(OID_FIDO_AAGUID, false, &tlv(0x04, &aaguid)));
    }
    let extensions = tlv(0xa3, &tlv(0x30, &exts.concat()));
    let tbs = seq(&[
        &tlv(0xa0, &uint(&[2])),
        &uint(&spec.serial),
        &sig_alg,
        &spec.issuer,
        &validity,
        &spec.subject,
        &spki(spec.subject_key),
        &extensions,
    ]);
    let signature = keys::sign_der(spec.issuer_key, &tbs);
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    seq(&[&tbs, &sig_alg, &tlv(0x03, &bits)])
}

impl AttestationMaterial {
    /// Generates a CA key and certificate, a batch key with a certificate for `aaguid`, and an
    /// enterprise key whose certificate names this key alone.
    pub fn generate(aaguid: [u8; 16], rng: &mut dyn RandomSource) -> Result<Self, AuthnError> {
        let ca_scalar = keys::new_private_key(rng)?;
        let batch_scalar = keys::new_private_key(rng)?;
        let ca_key = keys::signing_key(ca_scalar.expose_secret())?;
        let batch_key = keys::signing_key(batch_scalar.expose_secret())?;
        let mut ca_serial = keys::random_array::<16>(rng)?;
        ca_serial[0] &= 0x7f;
        let mut batch_serial = keys::random_array::<16>(rng)?;
        batch_serial[0] &= 0x7f;
        let ca_name = name("US", "keygate", None, "keygate software key attestation CA");
        let ca_cert = certificate(&CertSpec {
            serial: ca_serial,
            issuer: ca_name.clone(),
            subject: ca_name.clone(),
            subject_key: &ca_key,
            issuer_key: &ca_key,
            ca: true,
            aaguid: None,
        });
        let batch_cert = certificate(&CertSpec {
            serial: batch_serial,
            issuer: ca_name.clone(),
            subject: name(
                "US",
                "keygate",
                Some("Authenticator Attestation"),
                "keygate software key batch",
            ),
            subject_key: &batch_key,
            issuer_key: &ca_key,
            ca: false,
            aaguid: Some(aaguid),
        });
        let enterprise_scalar = keys::new_private_key(rng)?;
        let enterprise_key = keys::signing_key(enterprise_scalar.expose_secret())?;
        let mut enterprise_serial = keys::random_array::<16>(rng)?;
        enterprise_serial[0] &= 0x7f;
        let device_id: String = keys::random_array::<8>(rng)?
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let enterprise_cert = certificate(&CertSpec {
            serial: enterprise_serial,
            issuer: ca_name,
            subject: name(
                "US",
                "keygate",
                Some("Authenticator Attestation"),
                &format!("keygate software key {device_id}"),
            ),
            subject_key: &enterprise_key,
            issuer_key: &ca_key,
            ca: false,
            aaguid: Some(aaguid),
        });
        Ok(Self {
            aaguid,
            ca_cert,
            batch_cert,
            batch_key: Secret::new(batch_scalar.expose_secret().to_vec()),
            enterprise: Some(EnterpriseMaterial {
                cert: enterprise_cert,
                key: Secret::new(enterprise_scalar.expose_secret().to_vec()),
            }),
        })
    }

    /// The batch signing key.
    pub fn batch_signing_key(&self) -> Result<SigningKey, AuthnError> {
        keys::signing_key(self.batch_key.expose_secret())
    }

    /// The batch private key for signing (without computing its public key).
    pub(crate) fn batch_secret_key(&self) -> Result<p256::SecretKey, AuthnError> {
        keys::secret_key(self.batch_key.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::keys::SeededRandomForTests;
    use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};
    use x509_parser::prelude::*;

    #[test]
    fn batch_certificate_meets_fido_requirements_and_chains_to_ca() {
        let aaguid = [0xab; 16];
        let m = AttestationMaterial::generate(aaguid, &mut SeededRandomForTests::new(1)).unwrap();
        let (rest, batch) = X509Certificate::from_der(&m.batch_cert).unwrap();
        assert!(rest.is_empty());
        let (_, ca) = X509Certificate::from_der(&m.ca_cert).unwrap();
        assert_eq!(batch.version(), X509Version::V3);
        let ou: Vec<_> = batch
            .subject()
            .iter_organizational_unit()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(ou, ["Authenticator Attestation"]);
        assert_eq!(batch.subject().iter_country().count(), 1);
        assert_eq!(batch.subject().iter_organization().count(), 1);
        assert_eq!(batch.subject().iter_common_name().count(), 1);
        let bc = batch.basic_constraints().unwrap().unwrap();
        assert!(!bc.value.ca);
        assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
        let ext = batch
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.4.1.45724.1.1.4")
            .unwrap();
        assert!(!ext.critical);
        // extnValue holds an OCTET STRING of the 16 AAGUID bytes.
        assert_eq!(ext.value[..2], [0x04, 0x10]);
        assert_eq!(&ext.value[2..], &aaguid);
        assert_eq!(batch.issuer(), ca.subject());

        // The CA's signature over the batch TBS verifies with the CA public key, and the batch
        // public key in the certificate is the batch signing key's.
        let ca_pub =
            VerifyingKey::from_sec1_bytes(&ca.public_key().subject_public_key.data).unwrap();
        let sig = Signature::from_der(&batch.signature_value.data).unwrap();
        ca_pub.verify(batch.tbs_certificate.as_ref(), &sig).unwrap();
        let batch_pub = batch.public_key().subject_public_key.data.to_vec();
        assert_eq!(
            batch_pub,
            keys::public_sec1(&m.batch_signing_key().unwrap())
        );
        // Self-signed CA verifies too.
        let ca_sig = Signature::from_der(&ca.signature_value.data).unwrap();
        ca_pub.verify(ca.tbs_certificate.as_ref(), &ca_sig).unwrap();
    }

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(tlv(0x04, &[0u8; 3]), [0x04, 3, 0, 0, 0]);
        assert_eq!(tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0u8; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(uint(&[0x00, 0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(uint(&[0x00, 0x00, 0x05]), [0x02, 0x01, 0x05]);
        assert_eq!(uint(&[0x00]), [0x02, 0x01, 0x00]);
    }
}
