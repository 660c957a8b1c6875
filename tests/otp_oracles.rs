//! Outside oracles for the `otp` layer: `oathtool` (OATH Toolkit), pyotp 2.12.0 and privacyIDEA 3.14
//! (`$KEYGATE_PYTHON`), and python-pskc / `pskc2pskc` (Debian, `/usr/bin/python3`). Codes from keygate equal theirs for
//! the same seeds; PSKC files flow both ways; `zbarimg` (Debian zbar-tools) decodes keygate's QR
//! codes (PNG and SVG-free terminal text are ours; the PNG is what a camera sees).
//!
//! Interop rule (COMMON.md): a missing tool fails the test when `KEYGATE_REQUIRE_INTEROP=1`,
//! otherwise the test prints `skipped: <tool> not found` and returns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use keygate::otp::pskc::{self, ImportOptions, PskcDecryption, PskcProtection, PskcToken};
use keygate::otp::{self, HashAlg, OtpauthMethod, OtpauthUri, Serial, TokenKind, TokenParams};
use keygate::secret::Secret;
use serde_json::{Value, json};

fn require_interop() -> bool {
    std::env::var("KEYGATE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// Finds a program on PATH (or an absolute path); applies the skip/fail rule when missing.
fn find_tool(name: &str) -> Option<PathBuf> {
    let candidate = Path::new(name);
    let found = if candidate.is_absolute() {
        candidate.is_file().then(|| candidate.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    if found.is_none() {
        assert!(
            !require_interop(),
            "{name} not found and KEYGATE_REQUIRE_INTEROP=1"
        );
        println!("skipped: {name} not found");
    }
    found
}

/// `$KEYGATE_PYTHON` if it imports `module` (the venv of scripts/test-all.sh).
fn venv_python(module: &str) -> Option<PathBuf> {
    let python = std::env::var("KEYGATE_PYTHON")
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let works = python.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !works {
        assert!(
            !require_interop(),
            "{module} ($KEYGATE_PYTHON) not found and KEYGATE_REQUIRE_INTEROP=1"
        );
        println!("skipped: {module} ($KEYGATE_PYTHON) not found");
        return None;
    }
    python
}

fn pyotp_python() -> Option<PathBuf> {
    venv_python("pyotp")
}

fn pskc_python() -> Option<PathBuf> {
    let python = find_tool("/usr/bin/python3")?;
    let ok = Command::new(&python)
        .args(["-c", "import pskc"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !require_interop(),
            "python3-pskc not found and KEYGATE_REQUIRE_INTEROP=1"
        );
        println!("skipped: python3-pskc not found");
        return None;
    }
    Some(python)
}

fn interop_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> String {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Deterministic xorshift; the same seeds go to keygate and to the oracle.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 24) as u8).collect()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self) -> impl FnMut(&mut [u8]) + '_ {
        |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = (self.next() >> 24) as u8;
            }
        }
    }
}

const ALGS: [HashAlg; 3] = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha512];

#[test]
fn oathtool_hotp_sha1_6_to_8_digits() {
    let Some(oathtool) = find_tool("oathtool") else {
        return;
    };
    let mut rng = Rng(0x0a71_700f);
    for case in 0..24 {
        let seed = rng.bytes(10 + (case % 5) * 10);
        let digits = 6 + (case as u32 % 3);
        let start = rng.below(1 << 40);
        let out = run(
            Command::new(&oathtool).args([
                "--hotp",
                "-d",
                &digits.to_string(),
                "-c",
                &start.to_string(),
                "-w",
                "9",
                &hex::encode(&seed),
            ]),
            None,
        );
        let codes: Vec<&str> = out.lines().collect();
        assert_eq!(codes.len(), 10);
        for (i, want) in codes.iter().enumerate() {
            assert_eq!(
                otp::hotp(&seed, start + i as u64, digits, HashAlg::Sha1).unwrap(),
                *want,
                "case {case}"
            );
        }
    }
}

#[test]
fn oathtool_totp_sha1_sha256_sha512() {
    let Some(oathtool) = find_tool("oathtool") else {
        return;
    };
    let mut rng = Rng(0x7070_7070);
    for case in 0..30 {
        let alg = ALGS[case % 3];
        let seed = rng.bytes(alg.output_len());
        let digits = 6 + (case as u32 % 3);
        let step = [30u64, 60, 45][(case / 3) % 3];
        let t0 = if case % 4 == 0 {
            rng.below(1_000_000)
        } else {
            0
        };
        let now = t0 + rng.below(4_000_000_000);
        let mode = match alg {
            HashAlg::Sha1 => "--totp=sha1",
            HashAlg::Sha256 => "--totp=sha256",
            HashAlg::Sha512 => "--totp=sha512",
        };
        let out = run(
            Command::new(&oathtool).args([
                mode,
                "-d",
                &digits.to_string(),
                "-s",
                &format!("{step}s"),
                "-S",
                &format!("@{t0}"),
                "-N",
                &format!("@{now}"),
                "-w",
                "2",
                &hex::encode(&seed),
            ]),
            None,
        );
        let codes: Vec<&str> = out.lines().collect();
        assert_eq!(codes.len(), 3);
        for (i, want) in codes.iter().enumerate() {
            let at = now + i as u64 * step;
            assert_eq!(
                otp::totp(&seed, at, step, t0, digits, alg).unwrap(),
                *want,
                "case {case} {alg} t0={t0} now={now}"
            );
        }
        // The verifier accepts oathtool's code for the current step.
        let m = otp::verify::check_totp(&seed, digits, alg, step, t0, None, 0, codes[0], now, 1)
            .unwrap();
        assert_eq!(m.drift_steps, 0);
    }
}

#[test]
fn pyotp_all_digits_and_algorithms() {
    let Some(python) = pyotp_python() else { return };
    let mut rng = Rng(0x0005_eed0_f0a7);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for digits in 6..=10u32 {
        for alg in ALGS {
            for _ in 0..4 {
                let len = [16usize, 20, 32, 64][rng.below(4) as usize];
                let seed = rng.bytes(len);
                let b32 = otp::otpauth::encode_base32(&seed);
                let counter = rng.below(1 << 48);
                cases.push(json!({"kind": "hotp", "secret_b32": b32, "digits": digits, "alg": alg.name().to_lowercase(), "counter": counter}));
                expected.push(otp::hotp(&seed, counter, digits, alg).unwrap());
                let period = [30u64, 60, 15][rng.below(3) as usize];
                let time = rng.below(5_000_000_000);
                cases.push(json!({"kind": "totp", "secret_b32": b32, "digits": digits, "alg": alg.name().to_lowercase(), "period": period, "time": time}));
                expected.push(otp::totp(&seed, time, period, 0, digits, alg).unwrap());
            }
        }
    }
    let out = run(
        Command::new(&python).arg(interop_script("otp_pyotp.py")),
        Some(&serde_json::to_string(&cases).unwrap()),
    );
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), expected.len());
    for ((case, want), got) in cases.iter().zip(&expected).zip(&got) {
        assert_eq!(want, got, "{case}");
    }
}

#[test]
fn pyotp_otpauth_uris_both_ways() {
    let Some(python) = pyotp_python() else { return };
    let mut rng = Rng(0x0071_u64 << 20 | 5);
    let ours = [
        OtpauthUri {
            method: OtpauthMethod::Totp { period: 60 },
            secret: Secret::new(rng.bytes(20)),
            issuer: Some("Keygate Corp".into()),
            account: "alice@example.com".into(),
            algorithm: HashAlg::Sha256,
            digits: 8,
        },
        OtpauthUri {
            method: OtpauthMethod::Hotp { counter: 42 },
            secret: Secret::new(rng.bytes(32)),
            issuer: Some("ACME".into()),
            account: "bob smith".into(),
            algorithm: HashAlg::Sha512,
            digits: 7,
        },
    ];
    // keygate -> pyotp
    let cases: Vec<Value> = ours
        .iter()
        .map(|u| json!({"kind": "uri", "uri": u.to_uri()}))
        .collect();
    let out = run(
        Command::new(&python).arg(interop_script("otp_pyotp.py")),
        Some(&serde_json::to_string(&cases).unwrap()),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "totp 8 sha256 {} 60 Keygate Corp alice@example.com",
            otp::otpauth::encode_base32(ours[0].secret.expose_secret())
        )
    );
    assert_eq!(
        lines[1],
        format!(
            "hotp 7 sha512 {} 42 ACME bob smith",
            otp::otpauth::encode_base32(ours[1].secret.expose_secret())
        )
    );
    // pyotp -> keygate
    let cases = json!([
        {"kind": "make_uri", "type": "totp", "secret_b32": otp::otpauth::encode_base32(ours[0].secret.expose_secret()), "digits": 8, "alg": "sha256", "period": 60, "name": "alice@example.com", "issuer": "Keygate Corp"},
        {"kind": "make_uri", "type": "hotp", "secret_b32": otp::otpauth::encode_base32(ours[1].secret.expose_secret()), "digits": 7, "alg": "sha512", "counter": 42, "name": "bob smith", "issuer": "ACME"},
    ]);
    let out = run(
        Command::new(&python).arg(interop_script("otp_pyotp.py")),
        Some(&cases.to_string()),
    );
    for (line, want) in out.lines().zip(&ours) {
        assert_eq!(&OtpauthUri::parse(line).unwrap(), want, "{line}");
    }
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("keygate-otp-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn python_keys(rng: &mut Rng) -> Vec<Value> {
    vec![
        json!({"id": "k-hotp", "serial": "100200300", "algorithm": "urn:ietf:params:xml:ns:keyprov:pskc:hotp",
               "secret_hex": hex::encode(rng.bytes(20)), "response_length": 8, "counter": 1234567, "issuer": "Issuer & Co", "manufacturer": "Vendor"}),
        json!({"id": "k-totp", "serial": "100200301", "algorithm": "urn:ietf:params:xml:ns:keyprov:pskc:totp",
               "secret_hex": hex::encode(rng.bytes(32)), "response_length": 6, "time_offset": 0, "time_interval": 60, "algorithm_suite": "HMAC-SHA256"}),
        json!({"id": "k-ocra", "serial": "100200302", "algorithm": "urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1",
               "secret_hex": hex::encode(rng.bytes(20)), "response_length": 8, "counter": 3, "algorithm_suite": "OCRA-1:HOTP-SHA1-8:C-QN08"}),
    ]
}

fn check_imported(tokens: &[PskcToken], keys: &[Value]) {
    assert_eq!(tokens.len(), keys.len());
    for (token, key) in tokens.iter().zip(keys) {
        assert_eq!(
            token.params.serial.as_str(),
            key["serial"].as_str().unwrap()
        );
        assert_eq!(token.key_id.as_deref(), key["id"].as_str());
        assert_eq!(
            hex::encode(token.secret.expose_secret()),
            key["secret_hex"].as_str().unwrap()
        );
        assert_eq!(
            u64::from(token.params.digits),
            key["response_length"].as_u64().unwrap()
        );
        assert_eq!(token.counter, key["counter"].as_u64().unwrap_or(0));
        assert_eq!(token.params.issuer.as_deref(), key["issuer"].as_str());
        if let Some(step) = key["time_interval"].as_u64() {
            assert_eq!(token.params.step, step);
            assert_eq!(token.params.kind, TokenKind::ResponseOnlyTotp);
            assert_eq!(token.params.alg, HashAlg::Sha256);
        }
        if let Some(suite) = key["algorithm_suite"]
            .as_str()
            .filter(|s| s.starts_with("OCRA"))
        {
            assert_eq!(token.params.kind.suite().unwrap().to_string(), suite);
        }
    }
}

#[test]
fn python_pskc_files_import() {
    let Some(python) = pskc_python() else { return };
    let dir = TempDir::new("pyimport");
    let mut rng = Rng(0x9b5c_0001);
    let keys = python_keys(&mut rng);
    let input = serde_json::to_string(&keys).unwrap();
    let script = interop_script("otp_pskc.py");
    let psk_hex = hex::encode(rng.bytes(16));
    let psk = PskcDecryption::PreSharedKey(Secret::new(hex::decode(&psk_hex).unwrap()));
    let password = "s3cr3t pässword";
    let pw = PskcDecryption::Password(Secret::new(password.to_owned()));

    let cases: [(&str, Option<&str>, &PskcDecryption); 3] = [
        ("plain", None, &PskcDecryption::None),
        ("psk", Some(psk_hex.as_str()), &psk),
        ("password", Some(password), &pw),
    ];
    for (mode, arg, decryption) in cases {
        let path = dir.0.join(format!("{mode}.pskcxml"));
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg("write").arg(&path).arg(mode);
        if let Some(arg) = arg {
            cmd.arg(arg);
        }
        run(&mut cmd, Some(&input));
        let xml = std::fs::read_to_string(&path).unwrap();
        let file = pskc::parse(&xml, decryption).unwrap_or_else(|e| panic!("{mode}: {e}"));
        check_imported(
            &pskc::import_policy(&file, &ImportOptions::default()).unwrap(),
            &keys,
        );
        if mode != "plain" {
            assert!(
                !xml.contains(
                    &data_encoding::BASE64
                        .encode(&hex::decode(keys[0]["secret_hex"].as_str().unwrap()).unwrap())
                )
            );
            let wrong = match mode {
                "psk" => PskcDecryption::PreSharedKey(Secret::new(vec![0; 16])),
                _ => PskcDecryption::Password(Secret::new("wrong".into())),
            };
            let err = pskc::parse(&xml, &wrong).unwrap_err();
            assert!(
                err.to_string().contains("wrong key or password"),
                "{mode}: {err}"
            );
        }
    }

    // pskc2pskc (pskc-utils) re-encrypts the plain file.
    let Some(pskc2pskc) = find_tool("pskc2pskc") else {
        return;
    };
    let plain = dir.0.join("plain.pskcxml");
    let new_key = hex::encode(rng.bytes(16));
    let out = dir.0.join("new-secret.pskcxml");
    run(
        Command::new(&pskc2pskc)
            .arg("--new-secret")
            .arg(&new_key)
            .arg("-o")
            .arg(&out)
            .arg(&plain),
        None,
    );
    let xml = std::fs::read_to_string(&out).unwrap();
    let file = pskc::parse(
        &xml,
        &PskcDecryption::PreSharedKey(Secret::new(hex::decode(&new_key).unwrap())),
    )
    .unwrap();
    check_imported(
        &pskc::import_policy(&file, &ImportOptions::default()).unwrap(),
        &keys,
    );
    let out = dir.0.join("new-password.pskcxml");
    run(
        Command::new(&pskc2pskc)
            .args(["--new-password", "hunter2"])
            .arg("-o")
            .arg(&out)
            .arg(&plain),
        None,
    );
    let xml = std::fs::read_to_string(&out).unwrap();
    let file = pskc::parse(
        &xml,
        &PskcDecryption::Password(Secret::new("hunter2".into())),
    )
    .unwrap();
    check_imported(
        &pskc::import_policy(&file, &ImportOptions::default()).unwrap(),
        &keys,
    );
    assert!(
        pskc::parse(
            &xml,
            &PskcDecryption::Password(Secret::new("hunter3".into()))
        )
        .is_err()
    );
}

fn export_tokens(rng: &mut Rng) -> Vec<PskcToken> {
    let token = |params: TokenParams, secret: Vec<u8>, counter: u64| PskcToken {
        package_index: 0,
        key_id: None,
        params,
        secret: Secret::new(secret),
        counter,
        drift_steps: 0,
        pin: None,
        user_id: None,
        manufacturer: Some("keygate".into()),
        valid_from: None,
        valid_to: None,
    };
    let serial = |s: &str| s.parse::<Serial>().unwrap();
    vec![
        token(
            TokenParams {
                issuer: Some("Keygate <test>".into()),
                ..TokenParams::new(serial("1234567897"), TokenKind::ResponseOnlyHotp)
            },
            rng.bytes(20),
            987_654_321,
        ),
        token(
            TokenParams {
                alg: HashAlg::Sha512,
                step: 60,
                digits: 6,
                ..TokenParams::new(serial("2234567896"), TokenKind::ResponseOnlyTotp)
            },
            rng.bytes(64),
            0,
        ),
        token(
            TokenParams::new(serial("3234567895"), TokenKind::default_signature()),
            rng.bytes(32),
            0,
        ),
    ]
}

#[test]
fn keygate_pskc_export_read_by_python_pskc() {
    let Some(python) = pskc_python() else { return };
    let dir = TempDir::new("export");
    let mut rng = Rng(0x00e4_0000_0077);
    let tokens = export_tokens(&mut rng);
    let psk = rng.bytes(16);
    let protections = [
        ("plain", PskcProtection::Plain, vec![]),
        (
            "psk",
            PskcProtection::PreSharedKey {
                key: Secret::new(psk.clone()),
                key_name: "transport key".into(),
            },
            vec!["psk".to_owned(), hex::encode(&psk)],
        ),
        (
            "password",
            PskcProtection::Password {
                password: Secret::new("export-pw".into()),
                iterations: 5000,
                key_name: "pw".into(),
            },
            vec!["password".to_owned(), "export-pw".to_owned()],
        ),
    ];
    for (name, protection, args) in protections {
        let xml = pskc::write(&tokens, &protection, &mut rng.fill()).unwrap();
        let path = dir.0.join(format!("{name}.pskcxml"));
        std::fs::write(&path, &xml).unwrap();
        let out = run(
            Command::new(&python)
                .arg(interop_script("otp_pskc.py"))
                .arg("read")
                .arg(&path)
                .args(&args),
            None,
        );
        let keys: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(keys.len(), tokens.len(), "{name}");
        for (key, token) in keys.iter().zip(&tokens) {
            assert_eq!(
                key["serial"].as_str(),
                Some(token.params.serial.as_str()),
                "{name}"
            );
            assert_eq!(
                key["secret_hex"].as_str().unwrap(),
                hex::encode(token.secret.expose_secret()),
                "{name}"
            );
            match &token.params.kind {
                TokenKind::ResponseOnlyTotp => {
                    assert_eq!(
                        key["time_interval"].as_u64(),
                        Some(token.params.step),
                        "{name}"
                    );
                    assert_eq!(key["time_offset"].as_u64(), Some(token.params.t0), "{name}");
                    assert_eq!(key["response_length"].as_u64(), Some(6));
                    assert_eq!(key["algorithm_suite"].as_str(), Some("HMAC-SHA512"));
                }
                TokenKind::ResponseOnlyHotp => {
                    assert_eq!(key["counter"].as_u64(), Some(token.counter), "{name}");
                    assert_eq!(key["issuer"].as_str(), token.params.issuer.as_deref());
                    assert_eq!(key["manufacturer"].as_str(), Some("keygate"));
                }
                TokenKind::Signature { suite } | TokenKind::ChallengeResponse { suite } => {
                    assert_eq!(
                        key["algorithm_suite"].as_str(),
                        Some(suite.to_string().as_str()),
                        "{name}"
                    );
                }
            }
        }
    }
}

#[test]
fn zbarimg_decodes_enrolment_and_challenge_qr_codes() {
    use keygate::otp::qr::{ChallengePayload, Qr};
    let Some(zbarimg) = find_tool("zbarimg") else {
        return;
    };
    let dir = TempDir::new("qr");
    let mut rng = Rng(0x0000_c0de_0042);
    let enrolment = OtpauthUri {
        method: OtpauthMethod::Totp { period: 30 },
        secret: Secret::new(rng.bytes(20)),
        issuer: Some("Keygate".into()),
        account: "alice@example.com".into(),
        algorithm: HashAlg::Sha1,
        digits: 8,
    }
    .to_uri();
    let challenge = ChallengePayload::Challenge {
        serial: "1234567897".parse().unwrap(),
        suite: "OCRA-1:HOTP-SHA1-8:QN08".parse().unwrap(),
        challenge: otp::generate_challenge(
            &"OCRA-1:HOTP-SHA1-8:QN08".parse().unwrap(),
            &mut rng.fill(),
        ),
        timestamp_steps: None,
    }
    .to_uri();
    let signature = ChallengePayload::Sign {
        serial: "1234567897".parse().unwrap(),
        suite: "OCRA-1:HOTP-SHA256-8:QH64-T1M".parse().unwrap(),
        fields: vec![
            ("amount".into(), "1 250,00 €".into()),
            ("to".into(), "DE89 3704 0044 0532 0130 00".into()),
        ],
        timestamp_steps: Some(28_333_333),
    }
    .to_uri();
    for (i, text) in [enrolment, challenge, signature].iter().enumerate() {
        let path = dir.0.join(format!("qr{i}.png"));
        std::fs::write(&path, Qr::new(text).unwrap().to_png(4).unwrap()).unwrap();
        let out = run(
            Command::new(&zbarimg).args(["--raw", "-q"]).arg(&path),
            None,
        );
        assert_eq!(out.trim_end_matches('\n'), text);
        if i > 0 {
            assert!(ChallengePayload::parse(out.trim_end_matches('\n')).is_ok());
        }
        // The terminal rendering, read back module by module, is the same code.
        let term_png = dir.0.join(format!("term{i}.png"));
        std::fs::write(
            &term_png,
            terminal_to_png(&Qr::new(text).unwrap().to_terminal()),
        )
        .unwrap();
        let out = run(
            Command::new(&zbarimg).args(["--raw", "-q"]).arg(&term_png),
            None,
        );
        assert_eq!(out.trim_end_matches('\n'), text, "terminal rendering");
    }
}

/// Turns half-block text (light modules drawn) back into a PNG, 4 px per module.
fn terminal_to_png(text: &str) -> Vec<u8> {
    let mut rows: Vec<Vec<bool>> = Vec::new(); // true = light
    for line in text.lines() {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            let (t, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected {other:?}"),
            };
            top.push(t);
            bottom.push(b);
        }
        rows.push(top);
        rows.push(bottom);
    }
    let scale = 4;
    let width = rows[0].len() * scale;
    let height = rows.len() * scale;
    let mut pixels = Vec::with_capacity(width * height);
    for row in &rows {
        for _ in 0..scale {
            for &light in row {
                pixels.extend(std::iter::repeat_n(if light { 255u8 } else { 0 }, scale));
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    out
}

/// One random OCRA case within what privacyIDEA's OCRA class takes: at most one of P and T
/// (it has no session input), a counter above 0, hex questions of even length.
fn ocra_case(rng: &mut Rng) -> (String, Vec<u8>, otp::OcraInput, Value) {
    const HASHES: [(&str, usize); 3] = [("SHA1", 20), ("SHA256", 32), ("SHA512", 64)];
    let (hash, key_len) = HASHES[rng.below(3) as usize];
    let digits = 4 + rng.below(7);
    let counter = rng.below(2) == 1;
    let (kind, len) = match rng.below(3) {
        0 => ("N", 4 + rng.below(61)),
        1 => ("A", 4 + rng.below(61)),
        _ => ("H", 4 + 2 * rng.below(31)),
    };
    let question_len = match kind {
        "H" => 4 + 2 * rng.below((len - 4) / 2 + 1),
        _ => 4 + rng.below(len - 3),
    } as usize;
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let alphabet: &[u8] = match kind {
        "N" => b"0123456789",
        "A" => ALNUM,
        _ => b"0123456789abcdef",
    };
    let question: String = (0..question_len)
        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize] as char)
        .collect();
    let mut suite = format!("OCRA-1:HOTP-{hash}-{digits}:");
    if counter {
        suite.push_str("C-");
    }
    suite.push_str(&format!("Q{kind}{len:02}"));
    let mut input = otp::OcraInput {
        question: question.clone(),
        ..otp::OcraInput::default()
    };
    let mut case = json!({"question": question});
    if counter {
        let c = 1 + rng.below(u64::MAX - 1);
        input.counter = Some(c);
        case["counter"] = json!(c);
    }
    match rng.below(3) {
        0 => {}
        1 => {
            let pin_hash = HASHES[rng.below(3) as usize].0;
            suite.push_str(&format!("-PSHA{}", &pin_hash[3..]));
            let pin = rng.below(100_000_000).to_string();
            input.pin = Some(otp::OcraPin::Pin(Secret::new(pin.clone())));
            case["pin"] = json!(pin);
        }
        _ => {
            let unit = ["S", "M", "H"][rng.below(3) as usize];
            suite.push_str(&format!("-T{}{unit}", 1 + rng.below(48)));
            let steps = rng.below(1 << 40);
            input.timestamp_steps = Some(steps);
            case["timesteps_hex"] = json!(format!("{steps:x}"));
        }
    }
    let key = rng.bytes(key_len);
    case["suite"] = json!(suite);
    case["key_hex"] = json!(hex::encode(&key));
    (suite, key, input, case)
}

/// OCRA (RFC 6287) against privacyIDEA's own implementation: 400 random suites over every
/// hash, 4 to 10 digits, QN/QA/QH questions, counters, PIN hashes and time steps, and
/// transaction signatures (keygate's QH64 question over transaction fields).
#[test]
fn privacyidea_ocra_responses_equal_keygates() {
    let Some(python) = venv_python("privacyidea") else {
        return;
    };
    let mut rng = Rng(0x0c4a_5eed_0001);
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..400 {
        let (suite, key, input, case) = ocra_case(&mut rng);
        let parsed: otp::OcraSuite = suite.parse().unwrap();
        ours.push(otp::ocra(&parsed, &key, &input).unwrap());
        cases.push(case);
    }
    // Transaction signing: the signature token's default suite over the fields' question.
    let signature_suite: otp::OcraSuite = otp::OcraSuite::DEFAULT_SIGNATURE.parse().unwrap();
    for i in 0..20u64 {
        let fields = vec![
            ("amount".to_owned(), format!("{}.{:02}", 10 * i + 3, i)),
            ("iban".to_owned(), format!("BE71 0961 2345 67{i:02}")),
        ];
        let question = otp::transaction_question(&fields).unwrap();
        let key = rng.bytes(32);
        let input = otp::OcraInput {
            question: question.clone(),
            ..otp::OcraInput::default()
        };
        ours.push(otp::ocra(&signature_suite, &key, &input).unwrap());
        cases.push(json!({
            "suite": otp::OcraSuite::DEFAULT_SIGNATURE,
            "key_hex": hex::encode(&key),
            "question": question,
        }));
    }
    let out = run(
        Command::new(&python)
            .arg(interop_script("privacyidea_oracle.py"))
            .arg("ocra"),
        Some(&Value::Array(cases.clone()).to_string()),
    );
    let theirs: Vec<String> = serde_json::from_str(&out).unwrap();
    assert_eq!(theirs.len(), ours.len());
    for ((case, ours), theirs) in cases.iter().zip(&ours).zip(&theirs) {
        assert_eq!(ours, theirs, "{case}");
    }
}

/// keygate's PSKC export (under a pre-shared key and under a password) read by privacyIDEA's
/// importer, as a migration from keygate to privacyIDEA would: serials, seeds, digits, counters
/// and TOTP steps arrive; privacyIDEA checks every ValueMAC.
#[test]
fn keygate_pskc_export_read_by_privacyidea() {
    let Some(python) = venv_python("privacyidea") else {
        return;
    };
    let mut rng = Rng(0x00e4_0000_0099);
    let tokens: Vec<PskcToken> = export_tokens(&mut rng)
        .into_iter()
        .filter(|t| {
            matches!(
                t.params.kind,
                TokenKind::ResponseOnlyHotp | TokenKind::ResponseOnlyTotp
            )
        })
        .collect();
    let psk = rng.bytes(16);
    let protections = [
        (
            PskcProtection::PreSharedKey {
                key: Secret::new(psk.clone()),
                key_name: "transport key".into(),
            },
            json!({"psk_hex": hex::encode(&psk)}),
        ),
        (
            PskcProtection::Password {
                password: Secret::new("export-pw".into()),
                iterations: 5000,
                key_name: "pw".into(),
            },
            json!({"password": "export-pw"}),
        ),
    ];
    for (protection, mut request) in protections {
        let xml = pskc::write(&tokens, &protection, &mut rng.fill()).unwrap();
        request["xml"] = json!(xml);
        let out = run(
            Command::new(&python)
                .arg(interop_script("privacyidea_oracle.py"))
                .arg("parse"),
            Some(&request.to_string()),
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["refused"], json!([]), "{parsed}");
        for token in &tokens {
            let serial = token.params.serial.as_str();
            let theirs = &parsed["tokens"][serial];
            assert_eq!(
                theirs["otpkey"].as_str(),
                Some(hex::encode(token.secret.expose_secret()).as_str()),
                "{serial}: {theirs}"
            );
            assert_eq!(
                theirs["otplen"].as_str(),
                Some(token.params.digits.to_string().as_str())
            );
            match token.params.kind {
                TokenKind::ResponseOnlyHotp => {
                    assert_eq!(theirs["type"], "hotp");
                    assert_eq!(
                        theirs["counter"].as_str(),
                        Some(token.counter.to_string().as_str())
                    );
                }
                _ => {
                    assert_eq!(theirs["type"], "totp");
                    assert_eq!(
                        theirs["timeStep"].as_str(),
                        Some(token.params.step.to_string().as_str())
                    );
                }
            }
            // privacyIDEA reads the hash from <Suite> as written (keygate writes RFC 6030's
            // "HMAC-SHA512"; privacyIDEA's own files say "sha512").
            let hashlib = theirs["hashlib"].as_str().unwrap_or_default();
            assert!(
                hashlib.ends_with(&token.params.alg.name().to_ascii_lowercase()),
                "{serial}: {hashlib}"
            );
        }
    }
}

/// privacyIDEA's own PSKC export imported by keygate (a migration from privacyIDEA): its
/// writer lower-cases element and attribute names and puts the hash in `<Suite hashalgo=..>`.
#[test]
fn privacyidea_pskc_export_imports() {
    let Some(python) = venv_python("privacyidea") else {
        return;
    };
    let mut rng = Rng(0x00e4_0000_00aa);
    let psk = rng.bytes(16);
    let specs = [
        ("hotp", "PIHOTP0001", 6, 17, "sha1", 0, 20),
        ("hotp", "PIHOTP0002", 8, 0, "sha256", 0, 32),
        ("totp", "PITOTP0001", 8, 0, "sha512", 60, 64),
        ("totp", "PITOTP0002", 6, 0, "sha1", 30, 20),
    ];
    let tokens: Vec<Value> = specs
        .iter()
        .map(|(kind, serial, digits, counter, hash, step, key_len)| {
            json!({"type": kind, "serial": serial, "otplen": digits, "counter": counter,
                   "hashlib": hash, "timestep": step, "key_hex": hex::encode(rng.bytes(*key_len))})
        })
        .collect();
    let request = json!({"psk_hex": hex::encode(&psk), "tokens": tokens});
    let out = run(
        Command::new(&python)
            .arg(interop_script("privacyidea_oracle.py"))
            .arg("export"),
        Some(&request.to_string()),
    );
    let xml: String = serde_json::from_str(&out).unwrap();
    let file = pskc::parse(&xml, &PskcDecryption::PreSharedKey(Secret::new(psk))).unwrap();
    assert_eq!(file.packages.len(), specs.len());
    let imported = pskc::import_policy(&file, &ImportOptions::default()).unwrap();
    assert_eq!(imported.len(), tokens.len());
    for spec in &tokens {
        let token = imported
            .iter()
            .find(|t| t.params.serial.as_str() == spec["serial"])
            .unwrap_or_else(|| panic!("{spec} not imported"));
        assert_eq!(hex::encode(token.secret.expose_secret()), spec["key_hex"]);
        assert_eq!(
            u64::from(token.params.digits),
            spec["otplen"].as_u64().unwrap()
        );
        assert_eq!(
            token.params.alg.name().to_ascii_lowercase(),
            spec["hashlib"].as_str().unwrap()
        );
        if spec["type"] == "totp" {
            assert!(matches!(token.params.kind, TokenKind::ResponseOnlyTotp));
            assert_eq!(token.params.step, spec["timestep"].as_u64().unwrap());
        } else {
            assert!(matches!(token.params.kind, TokenKind::ResponseOnlyHotp));
            assert_eq!(token.counter, spec["counter"].as_u64().unwrap());
        }
    }
}
