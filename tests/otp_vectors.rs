//! RFC vectors for the `otp` layer, read from the JSON files in tests/data/vectors (not retyped):
//! RFC 4226 Appendix D (with HMAC and truncation intermediates), RFC 6238 Appendix B,
//! RFC 6287 Appendix C, plus a property test of OCRA suite parse/print.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keygate::otp::{self, HashAlg, OcraInput, OcraPin, OcraSuite, QuestionKind, TimeStep};
use keygate::secret::Secret;
use proptest::prelude::*;
use serde_json::Value;

const HOTP_JSON: &str = include_str!("data/vectors/rfc4226_hotp_appendix_d.json");
const TOTP_JSON: &str = include_str!("data/vectors/rfc6238_totp_appendix_b.json");
const OCRA_JSON: &str = include_str!("data/vectors/rfc6287_ocra_appendix_c.json");

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

#[test]
fn rfc4226_appendix_d_with_intermediates() {
    let doc: Value = serde_json::from_str(HOTP_JSON).unwrap();
    let secret = hex(doc["secret_hex"].as_str().unwrap());
    assert_eq!(secret, doc["secret_ascii"].as_str().unwrap().as_bytes());
    let digits = u32::try_from(doc["digits"].as_u64().unwrap()).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 10);
    for v in vectors {
        let counter = v["counter"].as_u64().unwrap();
        let mac = otp::hotp_hmac(&secret, counter, HashAlg::Sha1);
        assert_eq!(
            hex::encode(&mac),
            v["hmac_hex"].as_str().unwrap(),
            "HMAC at counter {counter}"
        );
        let truncated = otp::dynamic_truncate(&mac);
        assert_eq!(
            format!("{truncated:08x}"),
            v["truncated_hex"].as_str().unwrap()
        );
        assert_eq!(u64::from(truncated), v["truncated_dec"].as_u64().unwrap());
        assert_eq!(
            otp::hotp(&secret, counter, digits, HashAlg::Sha1).unwrap(),
            v["hotp"].as_str().unwrap()
        );
    }
}

#[test]
fn rfc6238_appendix_b() {
    let doc: Value = serde_json::from_str(TOTP_JSON).unwrap();
    let step = doc["step_seconds"].as_u64().unwrap();
    let t0 = doc["t0"].as_u64().unwrap();
    let digits = u32::try_from(doc["digits"].as_u64().unwrap()).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 18);
    for v in vectors {
        let mode = v["mode"].as_str().unwrap();
        let alg = HashAlg::from_name(mode).unwrap();
        let seed = hex(doc["seeds_hex"][mode].as_str().unwrap());
        assert_eq!(seed, doc["seeds_ascii"][mode].as_str().unwrap().as_bytes());
        let time = v["unix_time"].as_u64().unwrap();
        let t = otp::totp_step(time, step, t0).unwrap();
        assert_eq!(format!("{t:016X}"), v["T_hex"].as_str().unwrap());
        assert_eq!(
            otp::totp(&seed, time, step, t0, digits, alg).unwrap(),
            v["totp"].as_str().unwrap(),
            "{v}"
        );
    }
}

#[test]
fn rfc6287_appendix_c() {
    let doc: Value = serde_json::from_str(OCRA_JSON).unwrap();
    let pin = doc["pin"].as_str().unwrap();
    assert_eq!(
        hex::encode(HashAlg::Sha1.digest(pin.as_bytes())),
        doc["pin_sha1_hex"].as_str().unwrap()
    );
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 70);
    for v in vectors {
        let suite: OcraSuite = v["suite"].as_str().unwrap().parse().unwrap();
        assert_eq!(suite.to_string(), v["suite"].as_str().unwrap());
        let key = hex(v["key_hex"].as_str().unwrap());
        let mut input = OcraInput {
            counter: v["counter"].as_u64(),
            question: v["question"].as_str().unwrap().to_owned(),
            pin: v["pin"]
                .as_str()
                .map(|p| OcraPin::Pin(Secret::new(p.to_owned()))),
            session: None,
            timestamp_steps: v["timestamp_steps_hex"]
                .as_str()
                .map(|t| u64::from_str_radix(t, 16).unwrap()),
        };
        let want = v["response"].as_str().unwrap();
        assert_eq!(otp::ocra(&suite, &key, &input).unwrap(), want, "{v}");
        // The same with a precomputed PIN hash (what a verifier stores).
        if input.pin.is_some() {
            input.pin = Some(OcraPin::Hash(Secret::new(hex(doc["pin_sha1_hex"]
                .as_str()
                .unwrap()))));
            assert_eq!(otp::ocra(&suite, &key, &input).unwrap(), want);
        }
        // The verifier accepts it, and refuses a changed response.
        assert_eq!(
            otp::verify::check_ocra(&suite, &key, &input, want, 0),
            Ok(())
        );
        let mut wrong = want.as_bytes().to_vec();
        wrong[0] = if wrong[0] == b'9' { b'0' } else { wrong[0] + 1 };
        let wrong = String::from_utf8(wrong).unwrap();
        assert_eq!(
            otp::verify::check_ocra(&suite, &key, &input, &wrong, 0),
            Err(otp::verify::Reject::NoMatch)
        );
        // Mutual mode: the question is the concatenation the role prescribes.
        if let Some(role) = v["role"].as_str() {
            let q = v["question"].as_str().unwrap();
            let (first, second) = q.split_at(q.len() / 2);
            let rebuilt = match role {
                "server" => otp::mutual_question(otp::MutualRole::Server, first, second),
                _ => otp::mutual_question(otp::MutualRole::Client, second, first),
            };
            assert_eq!(rebuilt, q);
        }
    }
}

#[test]
fn ocra_timestamp_from_unix_time() {
    // RFC 6287 Appendix C: "Mar 25 2008, 12:06:30 GMT" = 0x132d0b6 minutes.
    let suite: OcraSuite = "OCRA-1:HOTP-SHA512-8:QN08-T1M".parse().unwrap();
    assert_eq!(suite.timestamp_steps(1_206_446_790), Some(0x132d0b6));
}

#[test]
fn ocra_no_truncation_is_full_hmac_hex() {
    let suite: OcraSuite = "OCRA-1:HOTP-SHA256-0:QN08".parse().unwrap();
    let input = OcraInput {
        question: "12345678".into(),
        ..OcraInput::default()
    };
    let full = otp::ocra(&suite, b"12345678901234567890123456789012", &input).unwrap();
    let truncated_suite: OcraSuite = "OCRA-1:HOTP-SHA256-8:QN08".parse().unwrap();
    let mac = otp::ocra::ocra_hmac(
        &truncated_suite,
        b"12345678901234567890123456789012",
        &input,
    )
    .unwrap();
    assert_eq!(full.len(), 64);
    // Different suite text goes into the DataInput, so the MAC differs from the truncated suite's.
    assert_ne!(full, hex::encode(mac));
    assert!(
        otp::verify::check_ocra(
            &suite,
            b"12345678901234567890123456789012",
            &input,
            &full.to_uppercase(),
            0
        )
        .is_ok()
    );
}

#[test]
fn ocra_session_and_input_mismatch() {
    let suite: OcraSuite = "OCRA-1:HOTP-SHA1-6:C-QA08-S004".parse().unwrap();
    let key = b"12345678901234567890";
    let base = OcraInput {
        question: "ABCD1234".into(),
        counter: Some(1),
        session: Some(vec![0, 0, 1, 2]),
        ..Default::default()
    };
    let padded = OcraInput {
        session: Some(vec![1, 2]),
        ..base.clone()
    };
    assert_eq!(
        otp::ocra(&suite, key, &base).unwrap(),
        otp::ocra(&suite, key, &padded).unwrap()
    );
    assert!(
        otp::ocra(
            &suite,
            key,
            &OcraInput {
                session: Some(vec![0; 5]),
                ..base.clone()
            }
        )
        .is_err()
    );
    assert!(
        otp::ocra(
            &suite,
            key,
            &OcraInput {
                counter: None,
                ..base.clone()
            }
        )
        .is_err()
    );
    assert!(
        otp::ocra(
            &suite,
            key,
            &OcraInput {
                session: None,
                ..base.clone()
            }
        )
        .is_err()
    );
    assert!(
        otp::ocra(
            &suite,
            key,
            &OcraInput {
                question: "é".into(),
                ..base
            }
        )
        .is_err()
    );
}

fn arb_suite() -> impl Strategy<Value = OcraSuite> {
    let hash = prop_oneof![
        Just(HashAlg::Sha1),
        Just(HashAlg::Sha256),
        Just(HashAlg::Sha512)
    ];
    let digits = prop_oneof![Just(0u32), 4u32..=10];
    let kind = prop_oneof![
        Just(QuestionKind::Alphanumeric),
        Just(QuestionKind::Numeric),
        Just(QuestionKind::Hex)
    ];
    let pin = proptest::option::of(prop_oneof![
        Just(HashAlg::Sha1),
        Just(HashAlg::Sha256),
        Just(HashAlg::Sha512)
    ]);
    let time = proptest::option::of(prop_oneof![
        (1u8..=59).prop_map(TimeStep::Seconds),
        (1u8..=59).prop_map(TimeStep::Minutes),
        (1u8..=48).prop_map(TimeStep::Hours),
    ]);
    (
        hash,
        digits,
        any::<bool>(),
        kind,
        4u8..=64,
        pin,
        proptest::option::of(1u16..=999),
        time,
    )
        .prop_map(
            |(
                hash,
                digits,
                counter,
                question_kind,
                question_len,
                pin_hash,
                session_len,
                time_step,
            )| OcraSuite {
                hash,
                digits,
                counter,
                question_kind,
                question_len,
                pin_hash,
                session_len,
                time_step,
            },
        )
}

proptest! {
    #[test]
    fn ocra_suite_print_parse_round_trip(suite in arb_suite()) {
        let text = suite.to_string();
        let parsed: OcraSuite = text.parse().unwrap();
        prop_assert_eq!(&parsed, &suite);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn ocra_suite_parse_never_panics(text in "OCRA-1:HOTP-SHA[0-9]{1,3}-[0-9]{1,2}:[A-Z0-9-]{0,30}") {
        if let Ok(suite) = text.parse::<OcraSuite>() {
            prop_assert_eq!(suite.to_string(), text);
        }
    }
}
