//! Platform side of long credential lists: maxCredentialCountInList (GetInfo 0x07) and
//! maxCredentialIdLength (0x08), CTAP 2.1 §6.4.
//!
//! An authenticator takes at most `maxCredentialCountInList` descriptors in an allowList or
//! excludeList, each ID at most `maxCredentialIdLength` bytes. A platform with a longer list
//! drops the IDs that are too long, and when the rest does not fit in one request it finds the
//! one credential the authenticator holds with silent pre-flight GetAssertions (`up = false`,
//! CTAP 2.1 §6.2.2 "up" option), one batch at a time, as browsers, libfido2 and python-fido2
//! do. The real request then carries only that credential (or, for an allowList without any
//! match, a dummy one so the user is still asked to touch the key before
//! CTAP2_ERR_NO_CREDENTIALS).
//!
//! [`plan`] decides; [`Preflight`] is the sans-IO loop: [`Preflight::request`] builds the next
//! probe, [`Preflight::on_reply`] takes its outcome. The host driver and the WebAuthn client
//! each drive it over their own transport.

use std::collections::BTreeMap;

use super::commands::{get_assertion, get_info};
use super::error::{Ctap2Error, DecodeError};
use super::status::StatusCode;
use super::types::PublicKeyCredentialDescriptor;

/// What to do with a credential list.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Send these descriptors as they are: the list fits in one request (IDs longer than
    /// maxCredentialIdLength already removed). May be empty when every ID was too long.
    Direct(Vec<PublicKeyCredentialDescriptor>),
    /// The list is longer than maxCredentialCountInList: probe it in batches first.
    Preflight(Preflight),
}

/// The limits an authenticator reported: (maxCredentialCountInList, maxCredentialIdLength).
/// Absent or zero members mean "not reported".
fn limits(info: &get_info::Response) -> (Option<usize>, Option<usize>) {
    let positive = |n: Option<u64>| {
        n.filter(|n| *n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    };
    (
        positive(info.max_credential_count_in_list),
        positive(info.max_credential_id_length),
    )
}

/// The authenticator's maxCredentialCountInList, if it reported a valid one (greater than zero).
pub fn max_count_in_list(info: &get_info::Response) -> Option<usize> {
    limits(info).0
}

/// Drops the descriptors whose ID is longer than the authenticator's maxCredentialIdLength.
pub fn usable(
    info: &get_info::Response,
    list: &[PublicKeyCredentialDescriptor],
) -> Vec<PublicKeyCredentialDescriptor> {
    let (_, max_id) = limits(info);
    list.iter()
        .filter(|d| max_id.is_none_or(|max| d.id.len() <= max))
        .cloned()
        .collect()
}

/// Decides how to send `list` to the authenticator described by `info`. A key that reports no
/// maxCredentialCountInList gets the whole list at once (CTAP 2.0 keys take long lists); one
/// that reports a limit gets batches of at most that many.
pub fn plan(info: &get_info::Response, list: &[PublicKeyCredentialDescriptor]) -> Plan {
    let list = usable(info, list);
    match max_count_in_list(info) {
        Some(max) if list.len() > max => Plan::Preflight(Preflight::new(list, max)),
        _ => Plan::Direct(list),
    }
}

/// The allowList sent when a pre-flight found no credential: one descriptor with the ID
/// `[0x00]`, which no authenticator holds, so the key still waits for a touch and then answers
/// CTAP2_ERR_NO_CREDENTIALS (the user learns nothing without touching; python-fido2 does the same).
pub fn no_match_allow_list() -> Vec<PublicKeyCredentialDescriptor> {
    vec![PublicKeyCredentialDescriptor::public_key(vec![0x00])]
}

/// What a pre-flight reply means.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The authenticator holds this credential.
    Found(PublicKeyCredentialDescriptor),
    /// Send [`Preflight::request`] again (next batch, or the same one smaller).
    Continue,
    /// No batch matched.
    NotFound,
}

/// Silent pre-flight of a credential list in batches (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    remaining: Vec<PublicKeyCredentialDescriptor>,
    batch: usize,
}

impl Preflight {
    /// Probes `list` in batches of `batch` descriptors (at least 1).
    pub fn new(list: Vec<PublicKeyCredentialDescriptor>, batch: usize) -> Self {
        Self {
            remaining: list,
            batch: batch.max(1),
        }
    }

    /// The batch the next request carries (empty when the list is exhausted).
    pub fn current_batch(&self) -> &[PublicKeyCredentialDescriptor] {
        &self.remaining[..self.batch.min(self.remaining.len())]
    }

    /// The next probe: GetAssertion with `options = {"up": false}` and the current batch as
    /// allowList; `pin_uv_auth` is (pinUvAuthParam over `client_data_hash`, protocol) when the
    /// platform has a pinUvAuthToken (credProtect level 3 credentials are visible only then).
    /// `None` when no batch is left.
    pub fn request(
        &self,
        rp_id: &str,
        client_data_hash: &[u8],
        pin_uv_auth: Option<(Vec<u8>, u64)>,
    ) -> Option<get_assertion::Request> {
        let batch = self.current_batch();
        if batch.is_empty() {
            return None;
        }
        let (pin_uv_auth_param, pin_uv_auth_protocol) = pin_uv_auth.unzip();
        Some(get_assertion::Request {
            rp_id: rp_id.to_owned(),
            client_data_hash: client_data_hash.to_vec(),
            allow_list: Some(batch.to_vec()),
            extensions: None,
            options: Some(BTreeMap::from([("up".to_owned(), false)])),
            pin_uv_auth_param,
            pin_uv_auth_protocol,
        })
    }

    /// Takes the outcome of the last [`Self::request`]: a reply, or the status the authenticator
    /// answered. NO_CREDENTIALS moves to the next batch; REQUEST_TOO_LARGE or LIMIT_EXCEEDED
    /// retries with a batch one smaller; any other status is returned as the error. A reply to
    /// a batch of several must name its credential, and one from the batch.
    pub fn on_reply(
        &mut self,
        reply: Result<&get_assertion::Response, StatusCode>,
    ) -> Result<Step, Ctap2Error> {
        let batch_len = self.current_batch().len();
        match reply {
            Ok(_) if batch_len == 1 => Ok(Step::Found(self.remaining[0].clone())),
            Ok(response) => {
                let named = response
                    .credential
                    .as_ref()
                    .ok_or(Ctap2Error::InvalidResponse(DecodeError::missing(
                        "pre-flight assertion without credential",
                    )))?;
                self.current_batch()
                    .iter()
                    .find(|d| d.id == named.id)
                    .cloned()
                    .map(Step::Found)
                    .ok_or(Ctap2Error::InvalidResponse(DecodeError::invalid_parameter(
                        "pre-flight assertion names a credential outside the batch",
                    )))
            }
            Err(StatusCode::CTAP2_ERR_NO_CREDENTIALS) => {
                self.remaining.drain(..batch_len);
                Ok(if self.remaining.is_empty() {
                    Step::NotFound
                } else {
                    Step::Continue
                })
            }
            Err(StatusCode::CTAP2_ERR_REQUEST_TOO_LARGE | StatusCode::CTAP2_ERR_LIMIT_EXCEEDED)
                if batch_len > 1 =>
            {
                self.batch = batch_len - 1;
                Ok(Step::Continue)
            }
            Err(status) => Err(Ctap2Error::Status(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[PublicKeyCredentialDescriptor]) -> Vec<u8> {
        list.iter().map(|d| d.id[0]).collect()
    }

    fn list(n: u8) -> Vec<PublicKeyCredentialDescriptor> {
        (0..n)
            .map(|i| PublicKeyCredentialDescriptor::public_key(vec![i; 16]))
            .collect()
    }

    fn info(count: Option<u64>, id_len: Option<u64>) -> get_info::Response {
        get_info::Response {
            max_credential_count_in_list: count,
            max_credential_id_length: id_len,
            ..Default::default()
        }
    }

    #[test]
    fn plan_direct_when_it_fits_or_no_limit() {
        assert_eq!(plan(&info(Some(5), None), &list(5)), Plan::Direct(list(5)));
        assert_eq!(plan(&info(None, None), &list(40)), Plan::Direct(list(40)));
        // Zero is not a valid limit (§6.4: MUST be greater than zero): ignored.
        assert_eq!(plan(&info(Some(0), None), &list(3)), Plan::Direct(list(3)));
        assert_eq!(max_count_in_list(&info(Some(0), None)), None);
        assert_eq!(max_count_in_list(&info(None, None)), None);
        assert_eq!(max_count_in_list(&info(Some(3), None)), Some(3));
    }

    #[test]
    fn long_ids_are_dropped_before_counting() {
        let mut input = list(3);
        input.insert(1, PublicKeyCredentialDescriptor::public_key(vec![9; 17]));
        assert_eq!(
            plan(&info(Some(3), Some(16)), &input),
            Plan::Direct(list(3))
        );
        assert_eq!(usable(&info(None, Some(16)), &input).len(), 3);
        assert_eq!(usable(&info(None, None), &input).len(), 4);
    }

    #[test]
    fn batches_until_found_in_the_last() {
        let Plan::Preflight(mut preflight) = plan(&info(Some(2), None), &list(5)) else {
            panic!("expected a pre-flight");
        };
        let mut sent = Vec::new();
        loop {
            let request = preflight.request("example.com", &[0; 32], None).unwrap();
            assert_eq!(request.option("up"), Some(false));
            let batch = request.allow_list.unwrap();
            sent.push(ids(&batch));
            if batch.iter().any(|d| d.id[0] == 4) {
                let reply = get_assertion::Response {
                    credential: Some(batch[0].clone()),
                    ..Default::default()
                };
                let step = preflight.on_reply(Ok(&reply)).unwrap();
                assert_eq!(step, Step::Found(list(5)[4].clone()));
                break;
            }
            let step = preflight
                .on_reply(Err(StatusCode::CTAP2_ERR_NO_CREDENTIALS))
                .unwrap();
            assert_eq!(step, Step::Continue);
        }
        assert_eq!(sent, [vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn not_found_shrink_and_errors() {
        let mut preflight = Preflight::new(list(3), 3);
        let status = |code| Err::<&get_assertion::Response, _>(code);
        let too_large = preflight.on_reply(status(StatusCode::CTAP2_ERR_REQUEST_TOO_LARGE));
        assert_eq!(too_large.unwrap(), Step::Continue);
        assert_eq!(ids(preflight.current_batch()), [0, 1]);
        let none = StatusCode::CTAP2_ERR_NO_CREDENTIALS;
        assert_eq!(preflight.on_reply(status(none)).unwrap(), Step::Continue);
        assert_eq!(preflight.on_reply(status(none)).unwrap(), Step::NotFound);
        assert!(preflight.request("a", &[0; 32], None).is_none());

        let mut preflight = Preflight::new(list(2), 2);
        assert!(matches!(
            preflight.on_reply(Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID)),
            Err(Ctap2Error::Status(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID))
        ));
        // A reply to a batch of two without a credential, or with a foreign one, is an error.
        assert!(preflight.on_reply(Ok(&Default::default())).is_err());
        let foreign = get_assertion::Response {
            credential: Some(PublicKeyCredentialDescriptor::public_key(vec![7; 16])),
            ..Default::default()
        };
        assert!(preflight.on_reply(Ok(&foreign)).is_err());
        // A batch of one never shrinks further, also when it is the last of bigger ones.
        let mut single = Preflight::new(list(2), 1);
        assert!(
            single
                .on_reply(Err(StatusCode::CTAP2_ERR_LIMIT_EXCEEDED))
                .is_err()
        );
        let mut tail = Preflight::new(list(3), 2);
        assert_eq!(tail.on_reply(status(none)).unwrap(), Step::Continue);
        assert_eq!(ids(tail.current_batch()), [2]);
        assert!(
            tail.on_reply(status(StatusCode::CTAP2_ERR_REQUEST_TOO_LARGE))
                .is_err()
        );
    }
}
