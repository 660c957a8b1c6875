//! Prompts: PINs read without echo (the terminal's echo is switched off with `stty`, and restored
//! even on error), and plain answers.

use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

use anyhow::Context;

/// Switches terminal echo off while alive.
struct NoEcho {
    active: bool,
}

impl NoEcho {
    fn new() -> Self {
        if !std::io::stdin().is_terminal() {
            return Self { active: false };
        }
        let active = Command::new("stty")
            .arg("-echo")
            .stdin(Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        Self { active }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if self.active {
            let _ = Command::new("stty")
                .arg("echo")
                .stdin(Stdio::inherit())
                .status();
        }
    }
}

/// Reads a secret line (PIN) from stdin without echo; the prompt goes to stderr.
pub fn read_secret(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let guard = NoEcho::new();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the PIN")?;
    let echoed = guard.active;
    drop(guard);
    if echoed {
        eprintln!();
    }
    let pin = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!pin.is_empty(), "no PIN entered");
    Ok(pin)
}

/// The PIN from `--pin`, `$KEYGATE_PIN`, or a prompt.
pub fn pin_from(arg: Option<String>, prompt: &str) -> anyhow::Result<String> {
    match arg {
        Some(pin) => Ok(pin),
        None => match std::env::var("KEYGATE_PIN") {
            Ok(pin) if !pin.is_empty() => Ok(pin),
            _ => read_secret(prompt),
        },
    }
}

/// A new PIN: `$KEYGATE_NEW_PIN`, or prompted twice without echo.
pub fn read_new_pin() -> anyhow::Result<String> {
    if let Ok(pin) = std::env::var("KEYGATE_NEW_PIN")
        && !pin.is_empty()
    {
        return Ok(pin);
    }
    let new = read_secret("New PIN: ")?;
    let again = read_secret("Confirm new PIN: ")?;
    anyhow::ensure!(again == new, "the PINs do not match");
    Ok(new)
}
