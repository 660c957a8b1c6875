//! One key's part of a race between several keys ([`super::race_cbor`],
//! [`super::first_touched`]). Keys differ in maxCredentialCountInList and
//! maxCredentialIdLength (CTAP 2.1 §6.4), so each key's list is fitted to that key, with the
//! machinery of the single-device path ([`crate::ctap2::credential_list`] driven by
//! [`super::drive_preflight`]):
//!
//! - MakeCredential: the excludeList fitted as [`Device::make_credential`] fits it; a key that
//!   holds an excluded credential answers CREDENTIAL_EXCLUDED after a touch (§6.1.2 step 3).
//! - GetAssertion with an allowList: a silent pre-flight (`up = false`) in batches of the key's
//!   maxCredentialCountInList (the whole usable list at once when it reports none) finds the
//!   credential the key holds; that key gets the request with just that credential. A key that
//!   holds none is asked for a touch instead (authenticatorSelection, or the CTAP 2.0 dummy
//!   MakeCredential) and, touched, answers CTAP2_ERR_NO_CREDENTIALS: a CTAP 2.1 key answers
//!   NO_CREDENTIALS before asking for presence (§6.2.2), which would otherwise end the race
//!   before the user touched the key that holds the credential.
//! - GetAssertion without an allowList (discoverable credentials): one silent probe for the
//!   rpId; a key that holds none is asked for a touch the same way.
//!
//! Other requests, and bytes that do not decode as a request, go out unchanged (the key judges
//! them). A fitted request is re-encoded from its decoded form, which keeps every member the
//! codec knows.

use tokio_util::sync::CancellationToken;

use super::{Device, DeviceError, PreflightProbe, reply_touched};
use crate::ctap2::StatusCode;
use crate::ctap2::commands::{
    CMD_GET_ASSERTION, CMD_MAKE_CREDENTIAL, get_assertion, make_credential,
};
use crate::ctap2::credential_list::{self, Preflight};
use crate::hid::ReportPipe;

impl<P: ReportPipe> Device<P> {
    /// Sends `request` (command byte + CBOR) as this key can take it (see the module docs);
    /// returns the raw reply (status byte + CBOR).
    pub(super) async fn race_exchange(
        &mut self,
        request: Vec<u8>,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, DeviceError> {
        let fitted = match request.split_first() {
            Some((&CMD_MAKE_CREDENTIAL, params)) => {
                match make_credential::Request::decode(params) {
                    Ok(decoded) => self
                        .fit_exclude_list(&decoded, cancel)
                        .await?
                        .map(|fitted| fitted.encode()),
                    Err(_) => None,
                }
            }
            Some((&CMD_GET_ASSERTION, params)) => match get_assertion::Request::decode(params) {
                Ok(decoded) => match self.race_allow_list(&decoded, cancel).await? {
                    RaceAssertion::Send(fitted) => Some(fitted.encode()),
                    RaceAssertion::Unchanged => None,
                    RaceAssertion::NoMatch => return self.touch_for_no_credentials(cancel).await,
                },
                Err(_) => None,
            },
            _ => None,
        };
        self.cbor_raw(fitted.as_deref().unwrap_or(&request), cancel, &mut |_| {})
            .await
    }

    /// Which credential of the request's allowList this key holds (silent pre-flight).
    async fn race_allow_list(
        &mut self,
        request: &get_assertion::Request,
        cancel: &CancellationToken,
    ) -> Result<RaceAssertion, DeviceError> {
        let Some(info) = &self.info else {
            return Ok(RaceAssertion::Unchanged);
        };
        let Some(list) = request.allow_list.as_ref().filter(|list| !list.is_empty()) else {
            return self.race_discoverable(request, cancel).await;
        };
        let usable = credential_list::usable(info, list);
        let batch = credential_list::max_count_in_list(info).unwrap_or(usable.len());
        let preflight = Preflight::new(usable, batch);
        let found = self
            .run_preflight(preflight, PreflightProbe::for_assertion(request), cancel)
            .await?;
        Ok(match found {
            Some(credential) => RaceAssertion::Send(Box::new(get_assertion::Request {
                allow_list: Some(vec![credential]),
                ..request.clone()
            })),
            None => RaceAssertion::NoMatch,
        })
    }

    /// Whether this key holds a discoverable credential for the request's rpId: one silent
    /// GetAssertion (`up = false`, without `uv` so that no built-in UV prompt appears, with the
    /// request's pinUvAuthParam so that credProtect-2 credentials count).
    async fn race_discoverable(
        &mut self,
        request: &get_assertion::Request,
        cancel: &CancellationToken,
    ) -> Result<RaceAssertion, DeviceError> {
        let mut options = request.options.clone().unwrap_or_default();
        options.remove("uv");
        options.insert("up".to_owned(), false);
        let probe = get_assertion::Request {
            allow_list: None,
            extensions: None,
            options: Some(options),
            ..request.clone()
        };
        let reply = self.cbor_raw(&probe.encode(), cancel, &mut |_| {}).await?;
        Ok(
            if reply.first() == Some(&StatusCode::CTAP2_ERR_NO_CREDENTIALS.0) {
                RaceAssertion::NoMatch
            } else {
                RaceAssertion::Unchanged
            },
        )
    }

    /// Waits for a touch on a key that holds none of the credentials asked for: touched, the
    /// reply is CTAP2_ERR_NO_CREDENTIALS (the key's own answer had it been asked after a touch);
    /// otherwise the key's reply as it is.
    async fn touch_for_no_credentials(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, DeviceError> {
        let selection = self.selection_request()?;
        let reply = self.cbor_raw(&selection, cancel, &mut |_| {}).await?;
        Ok(if reply_touched(&reply) {
            vec![StatusCode::CTAP2_ERR_NO_CREDENTIALS.0]
        } else {
            reply
        })
    }
}

/// What a key in a race is sent for a GetAssertion.
enum RaceAssertion {
    /// This request: the allowList cut to the one credential the key holds.
    Send(Box<get_assertion::Request>),
    /// The request as it is (a key with discoverable credentials for the rpId, or no GetInfo
    /// to fit the request to).
    Unchanged,
    /// The key holds none of the listed credentials.
    NoMatch,
}
