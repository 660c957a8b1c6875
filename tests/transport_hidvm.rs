//! Real kernel HID: our uhid key, found by our hidapi enumeration, driven through /dev/hidraw
//! by our host driver and by libfido2's `fido2-token`, under the project's QEMU runner
//! (tests/hidvm/setup.sh, built into target/hidvm).
//!
//! The host test (`hidvm_real_kernel`) boots the guest and runs a copy of *this same test
//! binary* inside it, from the shared work dir (the guest mounts a fresh tmpfs on /tmp, so a
//! checkout under /tmp would be invisible), with
//! `KEYGATE_HIDVM_GUEST=<workdir>`, which turns `guest_side` from a no-op into the guest
//! program. The guest writes `HIDVM <step> ok|FAIL ...` lines; the host checks them and the
//! `GUEST_RC` line.
//!
//! The key in the guest is keygate's software key, `keygatectl --json virtual serve --uhid`
//! (uhid device 1209:f1d0). In the guest: our hidapi enumeration finds it by usage page; our
//! driver does INIT, GetInfo, PING, MakeCredential and GetAssertion through /dev/hidraw (the
//! signatures are checked); libfido2 runs `fido2-token -L` and `-I`, `fido2-cred -M` then
//! `-V` (verifies the packed attestation) and `fido2-assert -G` then `-V` (verifies the
//! assertion with the public key from `fido2-cred -V`).
//!
//! Skip rule (COMMON.md): if QEMU/the runner cannot be built, fail when
//! `KEYGATE_REQUIRE_INTEROP=1`, else print `skipped: ...` and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keygate::ctap2::commands::{get_assertion, make_credential};
use keygate::ctap2::{
    AuthenticatorData, CoseKey, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::hidraw;
use tokio_util::sync::CancellationToken;

mod hidvm;

const GUEST_ENV: &str = "KEYGATE_HIDVM_GUEST";
/// Path of the keygatectl copy the guest runs.
const KEYGATECTL_ENV: &str = "KEYGATE_HIDVM_KEYGATECTL";
const VENDOR: u16 = 0x1209;
const PRODUCT: u16 = 0xf1d0;

fn require_interop() -> bool {
    std::env::var("KEYGATE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

fn skip_or_fail(why: &str) {
    if require_interop() {
        panic!("hidvm required (KEYGATE_REQUIRE_INTEROP=1) but {why}");
    }
    println!("skipped: {why}");
}

#[test]
fn hidvm_real_kernel() {
    if std::env::var_os(GUEST_ENV).is_some() {
        return; // inside the guest only `guest_side` runs
    }
    let Some(run) = hidvm::runner() else {
        skip_or_fail(
            "the QEMU hidvm runner could not be built (apt-get download / dpkg / python3)",
        );
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("hidvm-work")
        .tempdir_in(hidvm::target_dir())
        .unwrap();
    let work_path = work.path().to_str().unwrap().to_owned();
    assert!(
        !work_path.contains(' '),
        "hidvm work dir must not contain spaces"
    );
    // The guest sees the host root read-only but with a fresh tmpfs on /tmp, so a checkout under
    // /tmp is invisible there: run copies of the binaries from the shared work dir instead.
    let exe = work.path().join("transport_hidvm");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let keygatectl = work.path().join("keygatectl");
    std::fs::copy(env!("CARGO_BIN_EXE_keygatectl"), &keygatectl).unwrap();
    let fido2_token = which("fido2-token");
    let script = work.path().join("guest.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport {GUEST_ENV}={work_path} {KEYGATECTL_ENV}={keygatectl} PATH=/usr/sbin:/usr/bin:/sbin:/bin RUST_BACKTRACE=1 {fido}\n\
             cd {work_path}\n\
             {exe} --exact guest_side --nocapture --test-threads=1 > {work_path}/guest.log 2>&1\n\
             rc=$?\ncat {work_path}/guest.log\nexit $rc\n",
            exe = exe.display(),
            keygatectl = keygatectl.display(),
            fido = if fido2_token.is_some() { "" } else { "KEYGATE_NO_FIDO2_TOKEN=1" },
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let started = Instant::now();
    let out = Command::new(&run)
        .arg(&work_path)
        .arg(&script)
        .env("TMO", "240")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "hidvm run took {:.1} s; guest output:\n{stdout}",
        started.elapsed().as_secs_f64()
    );
    if !out.status.success() && !stdout.contains("GUEST_RC=") {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("not found") || stderr.contains("cannot") {
            skip_or_fail(&format!("QEMU did not start: {stderr}"));
            return;
        }
        // What the guest got to before the VM was stopped (it prints its log only at the end).
        let guest_log = std::fs::read_to_string(work.path().join("guest.log")).unwrap_or_default();
        panic!("QEMU failed: {stderr}\nguest log so far:\n{guest_log}");
    }
    let rc = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("GUEST_RC="))
        .map(str::trim);
    // libtest may print "test guest_side ... " on the same line as the first step.
    let steps: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find("HIDVM ").map(|i| l[i..].trim_end()))
        .collect();
    assert!(
        steps.iter().all(|l| !l.contains(" FAIL")),
        "guest steps failed: {steps:#?}"
    );
    for step in [
        "uhid-serve",
        "hidapi-enumerate",
        "driver-init",
        "driver-ping",
        "driver-getinfo",
        "driver-make-credential",
        "driver-get-assertion",
    ] {
        assert!(
            steps
                .iter()
                .any(|l| l.starts_with(&format!("HIDVM {step} ok"))),
            "missing step {step}: {steps:#?}"
        );
    }
    if fido2_token.is_some() {
        for step in [
            "fido2-token-L",
            "fido2-token-I",
            "fido2-cred-M",
            "fido2-cred-V",
            "fido2-assert-G",
            "fido2-assert-V",
        ] {
            assert!(
                steps
                    .iter()
                    .any(|l| l.starts_with(&format!("HIDVM {step} ok"))),
                "missing step {step}: {steps:#?}"
            );
        }
    } else {
        skip_or_fail("fido2-token not found (apt-get install fido2-tools); libfido2 steps not run");
    }
    assert_eq!(rc, Some("0"), "guest exit code");
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
}

fn step(name: &str, result: Result<String, String>) -> bool {
    match result {
        Ok(detail) => {
            println!("HIDVM {name} ok {detail}");
            true
        }
        Err(detail) => {
            println!("HIDVM {name} FAIL {detail}");
            false
        }
    }
}

/// The guest program (a no-op on the host).
#[test]
fn guest_side() {
    let Some(work) = std::env::var_os(GUEST_ENV) else {
        return;
    };
    let _ = work;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ok = rt.block_on(guest_main(PathBuf::from(work)));
    assert!(ok, "a guest step failed");
}

async fn guest_main(work: PathBuf) -> bool {
    // keygate's software key on uhid, as a user would run it.
    let keygatectl = std::env::var_os(KEYGATECTL_ENV).map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_keygatectl")),
        PathBuf::from,
    );
    let mut serve = match tokio::process::Command::new(keygatectl)
        .args(["--json", "virtual", "serve", "--uhid"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return step("uhid-serve", Err(format!("keygatectl: {e}"))),
    };
    let ready = match serve.stdout.take() {
        Some(stdout) => {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await
        }
        None => return step("uhid-serve", Err("no stdout".into())),
    };
    match ready {
        Ok(Ok(Some(line))) if line.contains("\"ready\"") => step(
            "uhid-serve",
            Ok("keygatectl virtual serve --uhid ready".into()),
        ),
        other => {
            return step(
                "uhid-serve",
                Err(format!("keygatectl did not get ready: {other:?}")),
            );
        }
    };

    // Our hidapi enumeration must find it by usage page.
    let started = Instant::now();
    let found = loop {
        match hidraw::enumerate() {
            Ok(list) => {
                if let Some(info) = list
                    .into_iter()
                    .find(|d| d.vendor == VENDOR && d.product == PRODUCT)
                {
                    break Ok(info);
                }
            }
            Err(e) => break Err(e.to_string()),
        }
        if started.elapsed() > Duration::from_secs(20) {
            break Err("no FIDO hidraw device appeared within 20 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let info = match found {
        Ok(info) => info,
        Err(e) => return step("hidapi-enumerate", Err(e)),
    };
    let mut all = step(
        "hidapi-enumerate",
        Ok(format!(
            "{} {:?} {:04x}:{:04x}",
            info.path.display(),
            info.product_string,
            info.vendor,
            info.product
        )),
    );

    all &= driver_steps(&info.path).await;

    if std::env::var_os("KEYGATE_NO_FIDO2_TOKEN").is_none() {
        all &= fido2_steps(&info.path, &work).await;
    }
    if let Some(pid) = serve.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    match tokio::time::timeout(Duration::from_secs(20), serve.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        other => all &= step("uhid-serve-stop", Err(format!("{other:?}"))),
    }
    all
}

async fn driver_steps(path: &Path) -> bool {
    let pipe = match hidraw::open(path) {
        Ok(pipe) => pipe,
        Err(e) => return step("driver-open", Err(e.to_string())),
    };
    let options = DeviceOptions {
        init_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let mut device = match Device::open(pipe, options).await {
        Ok(d) => d,
        Err(e) => return step("driver-init", Err(e.to_string())),
    };
    let mut all = step(
        "driver-init",
        Ok(format!("{:?} {:?}", device.cid(), device.capabilities())),
    );
    let data: Vec<u8> = (0..200u8).collect();
    all &= step(
        "driver-ping",
        match device.ping(&data).await {
            Ok(echo) if echo == data => Ok("200 bytes".into()),
            Ok(other) => Err(format!("echo differs: {} bytes", other.len())),
            Err(e) => Err(e.to_string()),
        },
    );
    all &= step(
        "driver-getinfo",
        match device.info() {
            Some(info) if info.versions.iter().any(|v| v == "FIDO_2_1") => {
                Ok(format!("{:?}", info.versions))
            }
            other => Err(format!("unexpected GetInfo {other:?}")),
        },
    );
    let none = CancellationToken::new();
    let cdh = sha256(b"hidvm make credential");
    let request = make_credential::Request {
        client_data_hash: cdh.to_vec(),
        rp: PublicKeyCredentialRpEntity {
            id: RP.into(),
            name: None,
        },
        user: PublicKeyCredentialUserEntity {
            id: b"hidvm-user".to_vec(),
            name: Some("hidvm".into()),
            display_name: None,
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters {
            type_: "public-key".into(),
            alg: -7,
        }],
        ..Default::default()
    };
    let credential = match device.make_credential(&request, &none, &mut |_| {}).await {
        Ok(reply) => match AuthenticatorData::parse(&reply.auth_data)
            .ok()
            .and_then(|a| a.attested_credential_data)
        {
            Some(attested) => {
                step(
                    "driver-make-credential",
                    Ok(format!(
                        "{} byte credential id, fmt {}",
                        attested.credential_id.len(),
                        reply.att_stmt.fmt()
                    )),
                );
                Some(attested)
            }
            None => {
                all &= step(
                    "driver-make-credential",
                    Err("no attested credential data".into()),
                );
                None
            }
        },
        Err(e) => {
            all &= step("driver-make-credential", Err(e.to_string()));
            None
        }
    };
    if let Some(attested) = credential {
        let cdh2 = sha256(b"hidvm get assertion");
        let request = get_assertion::Request {
            rp_id: RP.into(),
            client_data_hash: cdh2.to_vec(),
            allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(
                attested.credential_id.clone(),
            )]),
            ..Default::default()
        };
        all &= step(
            "driver-get-assertion",
            match device.get_assertion(&request, &none, &mut |_| {}).await {
                Ok(reply) => verify(
                    &attested.credential_public_key,
                    &[reply.auth_data.as_slice(), &cdh2].concat(),
                    &reply.signature,
                )
                .map(|()| "signature verified".to_owned()),
                Err(e) => Err(e.to_string()),
            },
        );
    }
    all
}

const RP: &str = "hidvm.keygate.test";

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn verify(key: &CoseKey, message: &[u8], der_signature: &[u8]) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    let key = p256::ecdsa::VerifyingKey::from(key.to_p256().map_err(|e| e.to_string())?);
    let signature = p256::ecdsa::Signature::from_der(der_signature).map_err(|e| e.to_string())?;
    key.verify(message, &signature).map_err(|e| e.to_string())
}

async fn run_tool(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .await
        .map_err(|e| format!("{}: {e}", args[0]))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{} exited {}: {text}", args.join(" "), out.status))
    }
}

async fn fido2_steps(path: &Path, work: &Path) -> bool {
    let dev = path.to_str().unwrap_or_default();
    let mut all = step(
        "fido2-token-L",
        run_tool(&["fido2-token", "-L"]).await.and_then(|out| {
            if out.contains(dev) {
                Ok(out.trim().replace('\n', " | "))
            } else {
                Err(format!("{dev} not listed: {out}"))
            }
        }),
    );
    all &= step(
        "fido2-token-I",
        run_tool(&["fido2-token", "-I", dev]).await.and_then(|out| {
            if out.contains("FIDO_2_1") {
                Ok(out.trim().replace('\n', " | "))
            } else {
                Err(format!("no FIDO_2_1 in: {out}"))
            }
        }),
    );
    // fido2-cred -M input: client data hash (base64), rp id, user name, user id (base64).
    let b64 = |bytes: &[u8]| data_encoding::BASE64.encode(bytes);
    let file = |name: &str| work.join(name).to_string_lossy().into_owned();
    let cred_in = format!(
        "{}\n{RP}\nlibfido2-user\n{}\n",
        b64(&sha256(b"libfido2 cdh")),
        b64(b"libfido2-user-id")
    );
    if let Err(e) = std::fs::write(file("cred.in"), cred_in) {
        return step("fido2-cred-M", Err(e.to_string()));
    }
    let made = run_tool(&[
        "fido2-cred",
        "-M",
        "-i",
        &file("cred.in"),
        "-o",
        &file("cred.out"),
        dev,
        "es256",
    ])
    .await;
    all &= step(
        "fido2-cred-M",
        made.map(|_| {
            std::fs::read_to_string(file("cred.out"))
                .unwrap_or_default()
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" | ")
        }),
    );
    // -V verifies the attestation statement and writes credential id + PEM public key.
    let verified = run_tool(&[
        "fido2-cred",
        "-V",
        "-i",
        &file("cred.out"),
        "-o",
        &file("cred.pk"),
        "es256",
    ])
    .await;
    all &= step(
        "fido2-cred-V",
        verified.map(|_| "attestation verified".to_owned()),
    );
    let Ok(pk) = std::fs::read_to_string(file("cred.pk")) else {
        return step("fido2-assert-G", Err("no cred.pk".into()));
    };
    let mut lines = pk.lines();
    let cred_id = lines.next().unwrap_or_default().to_owned();
    let pem: String = lines.map(|l| format!("{l}\n")).collect();
    let _ = std::fs::write(file("pubkey.pem"), pem);
    // fido2-assert -G input: client data hash, rp id, credential id.
    let assert_in = format!(
        "{}\n{RP}\n{cred_id}\n",
        b64(&sha256(b"libfido2 assert cdh"))
    );
    let _ = std::fs::write(file("assert.in"), assert_in);
    let got = run_tool(&[
        "fido2-assert",
        "-G",
        "-i",
        &file("assert.in"),
        "-o",
        &file("assert.out"),
        dev,
    ])
    .await;
    all &= step("fido2-assert-G", got.map(|_| "assertion made".to_owned()));
    let checked = run_tool(&[
        "fido2-assert",
        "-V",
        "-i",
        &file("assert.out"),
        &file("pubkey.pem"),
        "es256",
    ])
    .await;
    all &= step(
        "fido2-assert-V",
        checked.map(|_| "assertion verified".to_owned()),
    );
    all
}
