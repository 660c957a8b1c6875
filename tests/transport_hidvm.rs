//! Real kernel HID: our uhid key, found by our hidapi enumeration, driven through /dev/hidraw
//! by our host driver and by libfido2's `fido2-token`, under the project's QEMU runner
//! (tests/hidvm/setup.sh, built into target/hidvm).
//!
//! The host test (`hidvm_real_kernel`) boots the guest and runs *this same test binary* inside
//! it (the host root is mounted read-only, so the path is the same) with
//! `KEYGATE_HIDVM_GUEST=<workdir>`, which turns `guest_side` from a no-op into the guest
//! program. The guest writes `HIDVM <step> ok|FAIL ...` lines; the host checks them and the
//! `GUEST_RC` line.
//!
//! Until the software key's `keygatectl virtual serve --uhid` exists, the key in the guest is
//! `ScriptedUhidKey`: the real `ctaphid::device::DeviceFraming` on uhid answering
//! authenticatorGetInfo with a fixed CTAP 2.0 reply (a scripted INIT/GetInfo responder).
//!
//! Skip rule (COMMON.md): if QEMU/the runner cannot be built, fail when
//! `KEYGATE_REQUIRE_INTEROP=1`, else print `skipped: ...` and pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keygate::ctaphid::device::{DeviceConfig, DeviceEvent, DeviceFraming};
use keygate::ctaphid::{Capabilities, HidCmd};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::uhid::{UhidConfig, UhidDevice};
use keygate::hid::{ReportPipe, hidraw};
use tokio_util::sync::CancellationToken;

const GUEST_ENV: &str = "KEYGATE_HIDVM_GUEST";
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

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Build the runner if needed; `None` if it cannot be built here.
fn runner() -> Option<PathBuf> {
    let dir = target_dir().join("hidvm");
    let run = dir.join("run.sh");
    if run.exists() && dir.join("vmlinux").exists() {
        return Some(run);
    }
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hidvm/setup.sh");
    let out = Command::new("bash").arg(&setup).arg(&dir).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "hidvm setup failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    run.exists().then_some(run)
}

#[test]
fn hidvm_real_kernel() {
    if std::env::var_os(GUEST_ENV).is_some() {
        return; // inside the guest only `guest_side` runs
    }
    let Some(run) = runner() else {
        skip_or_fail(
            "the QEMU hidvm runner could not be built (apt-get download / dpkg / python3)",
        );
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("hidvm-work")
        .tempdir_in(target_dir())
        .unwrap();
    let work_path = work.path().to_str().unwrap().to_owned();
    assert!(
        !work_path.contains(' '),
        "hidvm work dir must not contain spaces"
    );
    let exe = std::env::current_exe().unwrap();
    let fido2_token = which("fido2-token");
    let script = work.path().join("guest.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport {GUEST_ENV}={work_path} PATH=/usr/sbin:/usr/bin:/sbin:/bin RUST_BACKTRACE=1 {fido}\n\
             cd {work_path}\n\
             {exe} --exact guest_side --nocapture --test-threads=1 > {work_path}/guest.log 2>&1\n\
             rc=$?\ncat {work_path}/guest.log\nexit $rc\n",
            exe = exe.display(),
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
        panic!("QEMU failed: {stderr}");
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
        "uhid-create",
        "hidapi-enumerate",
        "driver-init",
        "driver-ping",
        "driver-getinfo",
    ] {
        assert!(
            steps
                .iter()
                .any(|l| l.starts_with(&format!("HIDVM {step} ok"))),
            "missing step {step}: {steps:#?}"
        );
    }
    if fido2_token.is_some() {
        for step in ["fido2-token-L", "fido2-token-I"] {
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

/// A CTAP 2.0 authenticatorGetInfo reply: status 0, {1: ["FIDO_2_0"], 3: aaguid}.
fn scripted_get_info() -> Vec<u8> {
    let mut reply = vec![0x00, 0xa2, 0x01, 0x81, 0x68];
    reply.extend_from_slice(b"FIDO_2_0");
    reply.extend_from_slice(&[0x03, 0x50]);
    reply.extend_from_slice(&[0x6b; 16]);
    reply
}

/// ScriptedUhidKey: DeviceFraming on uhid; GetInfo gets `scripted_get_info`, every other CBOR
/// command CTAP1_ERR_INVALID_COMMAND, MSG the U2F "instruction not supported" status word.
async fn scripted_uhid_key(mut pipe: UhidDevice, stop: CancellationToken) {
    let mut framing = DeviceFraming::new(DeviceConfig {
        capabilities: Capabilities::CBOR | Capabilities::WINK,
        ..Default::default()
    });
    let mut rng = || getrandom::u32().unwrap_or(0x4242_4242);
    loop {
        let report = tokio::select! {
            _ = stop.cancelled() => break,
            r = pipe.recv() => match r { Ok(r) => r, Err(e) => { println!("HIDVM uhid-recv FAIL {e}"); break } },
        };
        for event in framing.push(&report, Instant::now(), &mut rng) {
            let replies = match event {
                DeviceEvent::Send(r) => vec![r],
                DeviceEvent::Request { cid, cmd, payload } => {
                    let reply = match (cmd, payload.first()) {
                        (HidCmd::CBOR, Some(0x04)) => scripted_get_info(),
                        (HidCmd::CBOR, _) => vec![0x01],
                        _ => vec![0x6d, 0x00],
                    };
                    framing.respond(cid, cmd, &reply)
                }
                DeviceEvent::Cancel(_) | DeviceEvent::Wink(_) => vec![],
            };
            for r in replies {
                if let Err(e) = pipe.send(&r).await {
                    println!("HIDVM uhid-send FAIL {e}");
                }
            }
        }
    }
    let _ = pipe.destroy();
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
    let ok = rt.block_on(guest_main());
    assert!(ok, "a guest step failed");
}

async fn guest_main() -> bool {
    let config = UhidConfig {
        name: "keygate scripted key".into(),
        vendor: VENDOR,
        product: PRODUCT,
        ..Default::default()
    };
    let key = match UhidDevice::create(config) {
        Ok(key) => key,
        Err(e) => return step("uhid-create", Err(e.to_string())),
    };
    step("uhid-create", Ok(String::new()));
    let stop = CancellationToken::new();
    let server = tokio::spawn(scripted_uhid_key(key, stop.clone()));

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
        if started.elapsed() > Duration::from_secs(10) {
            break Err("no FIDO hidraw device appeared within 10 s".to_owned());
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
        all &= fido2_token_steps(&info.path).await;
    }
    stop.cancel();
    let _ = server.await;
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
        match device
            .cbor_raw(&[0x04], &CancellationToken::new(), &mut |_| {})
            .await
        {
            Ok(reply) if reply == scripted_get_info() => Ok(format!("{} bytes", reply.len())),
            Ok(other) => Err(format!("unexpected reply {other:02x?}")),
            Err(e) => Err(e.to_string()),
        },
    );
    all
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

async fn fido2_token_steps(path: &Path) -> bool {
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
            if out.contains("FIDO_2_0") {
                Ok(out.trim().replace('\n', " | "))
            } else {
                Err(format!("no FIDO_2_0 in: {out}"))
            }
        }),
    );
    all
}
