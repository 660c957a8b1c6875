//! Durable verifications per second through the store (group commit), next to the raw
//! write+fdatasync rate of the same disk and `oathtool`'s code generation rate.
//!
//! Run: `cargo bench --bench tokens` (release). Every verification is committed (WAL,
//! `synchronous=FULL`) before its caller sees the verdict. Each caller works on its own tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use keygate::otp::{HashAlg, OcraInput, OcraSuite, hotp, ocra, totp};
use keygate::secret::Secret;
use keygate::store::SqliteStore;
use keygate::tokens::{
    Clock, NewTokenRequest, SystemClock, Target, TokenKind, TokenPolicy, TokenService,
};

const SEED: &[u8] = b"12345678901234567890";

/// write(4 KiB) + fdatasync per iteration: appending (the file grows, so metadata is flushed
/// too) or rewriting the same block (like a WAL that is reused after a checkpoint).
fn fsync_rate(dir: &Path, append: bool) -> f64 {
    use std::io::{Seek, SeekFrom};
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = [0x5au8; 4096];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        if !append {
            file.seek(SeekFrom::Start(0)).unwrap();
        }
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    rate
}

fn oathtool_rates() -> Option<(f64, f64)> {
    let hex_seed = SEED.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let ok = Command::new("oathtool").arg("--version").output().ok()?;
    if !ok.status.success() {
        return None;
    }
    let n = 200;
    let start = Instant::now();
    for counter in 0..n {
        let out = Command::new("oathtool")
            .args(["--hotp", "-d", "8", "-c", &counter.to_string(), &hex_seed])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let per_process = f64::from(n) / start.elapsed().as_secs_f64();
    let runs = 20;
    let start = Instant::now();
    let mut codes = 0usize;
    for _ in 0..runs {
        let out = Command::new("oathtool")
            .args(["--hotp", "-d", "8", "-w", "1000", &hex_seed])
            .output()
            .unwrap();
        codes += out
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
    }
    let batch = codes as f64 / start.elapsed().as_secs_f64();
    Some((per_process, batch))
}

fn service(dir: &Path) -> (TokenService, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open_state_dir(dir).unwrap());
    let svc = TokenService::new(store.clone(), TokenPolicy::default(), Arc::new(SystemClock));
    (svc, store)
}

fn req(kind: TokenKind, serial: String) -> NewTokenRequest {
    let mut r = NewTokenRequest::new(kind);
    r.serial = Some(serial);
    r.seed = Some(Secret::new(SEED.to_vec()));
    r
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Hotp,
    Totp,
    Ocra,
}

/// Runs `per_caller` durable checks on each of `callers` threads; returns checks per second
/// and the mean number of writes per COMMIT during the run.
fn run(dir: &Path, kind: Kind, callers: usize, per_caller: usize) -> (f64, f64) {
    let run_dir = dir.join(format!("{kind:?}-{callers}"));
    std::fs::create_dir_all(&run_dir).unwrap();
    let (svc, store) = service(&run_dir);
    // Provision: HOTP and OCRA one token per caller; TOTP one token per check (one accept
    // per token and time step).
    let mut serials: Vec<Vec<String>> = Vec::new();
    for caller in 0..callers {
        let count = if matches!(kind, Kind::Totp) {
            per_caller
        } else {
            1
        };
        let list: Vec<String> = (0..count).map(|j| format!("{caller:02}{j:08}")).collect();
        for chunk in list.chunks(1000) {
            let batch = chunk
                .iter()
                .map(|s| match kind {
                    Kind::Hotp => req(TokenKind::Hotp, s.clone()),
                    Kind::Totp => req(TokenKind::Totp, s.clone()),
                    Kind::Ocra => req(TokenKind::ChallengeResponse, s.clone()),
                })
                .collect();
            svc.create_tokens("bench", batch).unwrap();
        }
        serials.push(list);
    }
    let barrier = Arc::new(Barrier::new(callers + 1));
    let handles: Vec<_> = serials
        .into_iter()
        .map(|serials| {
            let (svc, barrier) = (svc.clone(), barrier.clone());
            std::thread::spawn(move || {
                let suite: OcraSuite = OcraSuite::DEFAULT_CHALLENGE_RESPONSE.parse().unwrap();
                barrier.wait();
                for i in 0..per_caller {
                    let verdict = match kind {
                        Kind::Hotp => {
                            let code = hotp(SEED, i as u64, 8, HashAlg::Sha1).unwrap();
                            svc.verify_code("bench", Target::Serial(&serials[0]), &code)
                        }
                        Kind::Totp => {
                            let now = SystemClock.now_unix();
                            let code = totp(SEED, now, 30, 0, 8, HashAlg::Sha1).unwrap();
                            svc.verify_code("bench", Target::Serial(&serials[i]), &code)
                        }
                        Kind::Ocra => {
                            let ch = svc.issue_challenge("bench", &serials[0]).unwrap();
                            let input = OcraInput {
                                question: ch.question.clone(),
                                ..OcraInput::default()
                            };
                            let response = ocra(&suite, SEED, &input).unwrap();
                            svc.verify_response("bench", &ch.id, &response)
                        }
                    }
                    .unwrap();
                    assert!(verdict.is_accepted(), "{kind:?}: {verdict:?}");
                }
            })
        })
        .collect();
    let before = store.commit_stats();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().unwrap();
    }
    let rate = (callers * per_caller) as f64 / start.elapsed().as_secs_f64();
    let after = store.commit_stats();
    let per_commit =
        (after.writes - before.writes) as f64 / (after.commits - before.commits).max(1) as f64;
    (rate, per_commit)
}

fn main() {
    // Criterion-style arguments (`--bench`) are accepted and ignored.
    let base = std::env::var_os("KEYGATE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    println!("keygate tokens benchmark: durable checks through the store");
    println!(
        "state dir: {} ({} CPUs)",
        dir.path().display(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:<44} {:>10.0} /s",
        "disk: append 4 KiB + fdatasync",
        fsync_rate(dir.path(), true)
    );
    println!(
        "{:<44} {:>10.0} /s",
        "disk: rewrite 4 KiB + fdatasync",
        fsync_rate(dir.path(), false)
    );
    match oathtool_rates() {
        Some((per_process, batch)) => {
            println!(
                "{:<44} {:>10.0} /s",
                "oathtool: one process per HOTP code", per_process
            );
            println!(
                "{:<44} {:>10.0} /s",
                "oathtool --hotp -w 1000: codes in batch", batch
            );
        }
        None => println!("oathtool: skipped: oathtool not found"),
    }
    for (kind, label) in [
        (Kind::Hotp, "HOTP verifications"),
        (Kind::Totp, "TOTP verifications"),
        (Kind::Ocra, "OCRA challenge+response pairs"),
    ] {
        for callers in [1usize, 8] {
            let per_caller = if callers == 1 { 2000 } else { 1500 };
            let (rate, per_commit) = run(dir.path(), kind, callers, per_caller);
            println!(
                "{:<44} {:>10.0} /s   ({per_commit:.1} writes per commit)",
                format!("{label}, {callers} caller(s)"),
                rate
            );
        }
    }
}
