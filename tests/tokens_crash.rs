//! Crash safety: a child process verifies HOTP codes in a loop and prints every acknowledged
//! result (flushed) before the next check; it is SIGKILLed at random points 20 times. After each
//! kill the store is reopened: no stored counter is lower than an acknowledged accept + 1, and no
//! acknowledged-accepted code is accepted again.
//!
//! The child is this same test binary, re-executed with `KEYGATE_CRASH_CHILD_DIR` set, running
//! only the `crash_child` test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keygate::otp::{HashAlg, hotp};
use keygate::secret::Secret;
use keygate::store::SqliteStore;
use keygate::tokens::{NewTokenRequest, SystemClock, Target, TokenKind, TokenPolicy, TokenService};

const CHILD_ENV: &str = "KEYGATE_CRASH_CHILD_DIR";
const SEED: &[u8] = b"crash test seed 0123456789";
const SERIAL: &str = "5550000001";

fn service(dir: &Path) -> TokenService {
    let store = Arc::new(SqliteStore::open_state_dir(dir).unwrap());
    let policy = TokenPolicy {
        verify: keygate::otp::verify::Policy {
            // Replays checked by the parent must not lock the token.
            max_failures: u32::MAX,
            ..Default::default()
        },
        ..Default::default()
    };
    TokenService::new(store, policy, Arc::new(SystemClock))
}

fn code(counter: u64) -> String {
    hotp(SEED, counter, 8, HashAlg::Sha1).unwrap()
}

/// The child: verifies consecutive codes forever, printing `ACK <counter> accept|reject`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Not a child: nothing to do.
    };
    let svc = service(Path::new(&dir));
    let mut counter = svc.token(SERIAL).unwrap().unwrap().counter;
    let stdout = std::io::stdout();
    loop {
        let verdict = svc
            .verify_code("crash-child", Target::Serial(SERIAL), &code(counter))
            .unwrap();
        let mut out = stdout.lock();
        if verdict.is_accepted() {
            writeln!(out, "ACK {counter} accept").unwrap();
        } else {
            writeln!(out, "ACK {counter} reject").unwrap();
        }
        out.flush().unwrap();
        drop(out);
        counter += 1;
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// xorshift, seeded from the OS: random kill points.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_accept() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let svc = service(dir.path());
        let mut req = NewTokenRequest::new(TokenKind::Hotp);
        req.serial = Some(SERIAL.into());
        req.seed = Some(Secret::new(SEED.to_vec()));
        svc.create_token("test", req).unwrap();
    }
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).unwrap();
    let mut rng = Rng(u64::from_le_bytes(seed) | 1);
    let exe = std::env::current_exe().unwrap();
    let mut accepted: Vec<u64> = Vec::new();
    let mut rounds_with_acks = 0;
    for round in 0..20 {
        let child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let stdout = child.0.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        };
        // Wait for the child to get going, then kill it at a random point.
        let started = Instant::now();
        while lines.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rng.next() % 300_000));
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        reader.join().unwrap();
        drop(child);

        let mut this_round = 0;
        for line in lines.lock().unwrap().iter() {
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let counter: u64 = parts.next().unwrap().parse().unwrap();
            match parts.next() {
                Some("accept") => {
                    accepted.push(counter);
                    this_round += 1;
                }
                Some("reject") => panic!("round {round}: child's code {counter} was rejected"),
                other => panic!("round {round}: bad line {line:?} ({other:?})"),
            }
        }
        if this_round > 0 {
            rounds_with_acks += 1;
        }

        // Reopen (recovery of the WAL after the kill) and check.
        let svc = service(dir.path());
        let stored = svc.token(SERIAL).unwrap().unwrap().counter;
        if let Some(&max) = accepted.iter().max() {
            assert!(
                stored > max,
                "round {round}: stored counter {stored} <= acknowledged accept {max}"
            );
        }
        // Acknowledged codes are never accepted again: the newest few and a random sample.
        let mut probe: Vec<u64> = accepted.iter().rev().take(3).copied().collect();
        for _ in 0..3 {
            if !accepted.is_empty() {
                probe.push(accepted[(rng.next() % accepted.len() as u64) as usize]);
            }
        }
        for counter in probe {
            let v = svc
                .verify_code("parent", Target::Serial(SERIAL), &code(counter))
                .unwrap();
            assert!(
                !v.is_accepted(),
                "round {round}: acknowledged code {counter} accepted again"
            );
        }
        assert_eq!(svc.token(SERIAL).unwrap().unwrap().counter, stored);
    }
    // Accepts are strictly increasing across all rounds (no counter went back).
    assert!(accepted.windows(2).all(|w| w[0] < w[1]), "{accepted:?}");
    assert!(
        rounds_with_acks >= 10,
        "only {rounds_with_acks} of 20 rounds got going"
    );
    eprintln!(
        "{} acknowledged accepts over 20 kills, {rounds_with_acks} rounds with progress",
        accepted.len()
    );
}
