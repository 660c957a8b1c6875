//! Software tokens that keygated holds for local users (the device side of a Digipass-style
//! token, [`crate::otp::soft_token`]): each belongs to one uid, its seed is sealed under its PIN
//! (Argon2id), and only its owner can list or use it.
//!
//! Each token is a file `<state_dir>/soft-tokens/<serial>.json` (0600) holding the owner uid and
//! the token's [`SoftTokenState`], written atomically (new temp file, fsync, rename, fsync of the
//! directory) after every use, also after a wrong PIN, so the device's own PIN lock survives a
//! restart. PIN checks run on the blocking pool (Argon2id is deliberately slow).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::config::SoftTokenSettings;
use super::error::BusError;
use super::tokens::token_error;
use crate::otp::OtpError;
use crate::otp::soft_token::{KdfParams, SoftToken, SoftTokenConfig, SoftTokenState};
use crate::otp::token::FillRandom;
use crate::otp::token::{Serial, TokenKind as OtpKind, TokenParams};
use crate::otp::{HashAlg, OcraSuite};
use crate::secret::Secret;
use crate::tokens::{CreatedToken, TokenError, TokenKind, TokenService};

/// What is persisted per software token.
#[derive(Debug, Serialize, Deserialize)]
struct SoftFile {
    owner_uid: u32,
    state: SoftTokenState,
}

#[derive(Debug)]
struct Entry {
    owner_uid: u32,
    token: Mutex<SoftToken>,
}

/// The software tokens of every user.
#[derive(Debug)]
pub struct SoftTokens {
    dir: PathBuf,
    config: SoftTokenConfig,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

fn otp_error(err: OtpError) -> BusError {
    match err {
        OtpError::WrongPin { remaining } => {
            BusError::Rejected(format!("wrong PIN, {remaining} tries left"))
        }
        OtpError::Locked => BusError::Locked(
            "the software token locked itself after too many wrong PINs; ask for its unlock \
             challenge and give it to your helpdesk"
                .into(),
        ),
        OtpError::WrongUnlockCode => BusError::Rejected(OtpError::WrongUnlockCode.to_string()),
        OtpError::UnlockBlocked => BusError::Locked(OtpError::UnlockBlocked.to_string()),
        OtpError::Random => BusError::Failed(OtpError::Random.to_string()),
        e @ OtpError::Sealed(_) => {
            tracing::error!(error = %e, "software token refused the server's seed");
            BusError::Failed("the software token and the server disagree on its seed".into())
        }
        other => BusError::InvalidArgs(other.to_string()),
    }
}

fn valid_serial(serial: &str) -> bool {
    !serial.is_empty()
        && serial.len() <= 64
        && serial
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Runs `op` with the operating system's random source; an error if the source failed.
fn with_os_random<T>(op: impl FnOnce(FillRandom<'_>) -> T) -> Result<T, BusError> {
    let mut failed = false;
    let mut fill = |buf: &mut [u8]| {
        if getrandom::fill(buf).is_err() {
            failed = true;
        }
    };
    let result = op(&mut fill);
    if failed {
        return Err(BusError::Failed("the random generator failed".into()));
    }
    Ok(result)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `bytes` to `path` atomically (0600 temp file, fsync, rename, fsync of the directory).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

impl SoftTokens {
    /// Loads every software token from `<state_dir>/soft-tokens`.
    pub fn open(state_dir: &Path, settings: &SoftTokenSettings) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = state_dir.join("soft-tokens");
        if !dir.exists() {
            std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        }
        let mut entries = HashMap::new();
        for item in std::fs::read_dir(&dir)? {
            let path = item?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<SoftFile>(&bytes).ok());
            match parsed {
                Some(file) => {
                    let serial = file.state.params.serial.as_str().to_owned();
                    entries.insert(
                        serial,
                        Arc::new(Entry {
                            owner_uid: file.owner_uid,
                            token: Mutex::new(SoftToken::from_state(file.state)),
                        }),
                    );
                }
                None => tracing::warn!(path = %path.display(), "unreadable software token skipped"),
            }
        }
        let config = SoftTokenConfig {
            kdf: KdfParams {
                m_cost_kib: settings.kdf_memory_kib,
                t_cost: settings.kdf_passes,
                p_cost: 1,
            },
            pin_digits: settings.pin_digits,
            max_pin_failures: settings.max_pin_failures,
        };
        Ok(Self {
            dir,
            config,
            entries: RwLock::new(entries),
        })
    }

    /// Fails with `InvalidArgs` unless `pin` has the configured number of digits.
    pub fn check_pin_format(&self, pin: &str) -> Result<(), BusError> {
        if pin.len() == self.config.pin_digits && pin.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(BusError::InvalidArgs(format!(
                "a token PIN is {} digits",
                self.config.pin_digits
            )))
        }
    }

    fn path_of(&self, serial: &str) -> PathBuf {
        self.dir.join(format!("{serial}.json"))
    }

    fn persist(&self, owner_uid: u32, state: &SoftTokenState) -> Result<(), BusError> {
        let serial = state.params.serial.as_str();
        let file = SoftFile {
            owner_uid,
            state: state.clone(),
        };
        let bytes = serde_json::to_vec(&file)
            .map_err(|e| BusError::Failed(format!("software token encoding: {e}")))?;
        write_atomic(&self.path_of(serial), &bytes).map_err(|e| {
            tracing::error!(error = %e, serial, "cannot persist software token");
            BusError::Failed("cannot persist the software token".into())
        })
    }

    /// Provisions a software token for `owner_uid` holding the seed of `created`.
    pub async fn create(
        self: &Arc<Self>,
        owner_uid: u32,
        created: &CreatedToken,
        pin: Secret<String>,
    ) -> Result<(), BusError> {
        let info = &created.info;
        if !valid_serial(&info.serial) {
            return Err(BusError::InvalidArgs(
                "serial must be letters, digits, - or _".into(),
            ));
        }
        let serial: Serial = info
            .serial
            .parse()
            .map_err(|e: OtpError| BusError::InvalidArgs(e.to_string()))?;
        let kind = match info.kind {
            TokenKind::Hotp => OtpKind::ResponseOnlyHotp,
            TokenKind::Totp => OtpKind::ResponseOnlyTotp,
            TokenKind::ChallengeResponse | TokenKind::Signature => {
                let suite: OcraSuite = info
                    .suite
                    .as_deref()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e: OtpError| BusError::InvalidArgs(e.to_string()))?;
                if info.kind == TokenKind::Signature {
                    OtpKind::Signature { suite }
                } else {
                    OtpKind::ChallengeResponse { suite }
                }
            }
        };
        let mut params = TokenParams::new(serial, kind);
        params.digits = info.digits;
        params.alg = HashAlg::from_name(&info.algorithm).unwrap_or(HashAlg::Sha1);
        params.step = info.period.max(1);
        params.issuer = info.issuer.clone();
        params.label = info.label.clone();
        params.owner = info.owner.clone();
        let seed = created.seed.clone();
        let config = self.config;
        let counter = info.counter;
        let this = Arc::clone(self);
        let serial = info.serial.clone();
        tokio::task::spawn_blocking(move || {
            let mut token = with_os_random(|fill| {
                SoftToken::create(params, &seed, pin.expose_secret(), config, fill)
            })?
            .map_err(otp_error)?;
            if counter != 0 {
                let mut state = token.state().clone();
                state.counter = counter;
                token = SoftToken::from_state(state);
            }
            this.persist(owner_uid, token.state())?;
            if let Ok(mut entries) = this.entries.write() {
                entries.insert(
                    serial.clone(),
                    Arc::new(Entry {
                        owner_uid,
                        token: Mutex::new(token),
                    }),
                );
            }
            tracing::info!(serial, owner_uid, "software token provisioned");
            Ok(())
        })
        .await
        .map_err(|e| BusError::Failed(format!("background task: {e}")))?
    }

    /// Removes the software token of `serial` (after the verifier's token was deleted).
    pub async fn remove_serial(&self, serial: &str) {
        if !valid_serial(serial) {
            return;
        }
        let removed = self.entries.write().ok().and_then(|mut e| e.remove(serial));
        if removed.is_some() {
            let _ = std::fs::remove_file(self.path_of(serial));
        }
    }

    /// The software tokens of `uid` as JSON (never the sealed seed).
    pub async fn list(&self, uid: u32) -> Result<serde_json::Value, BusError> {
        let entries: Vec<Arc<Entry>> = self
            .entries
            .read()
            .map(|e| e.values().filter(|e| e.owner_uid == uid).cloned().collect())
            .unwrap_or_default();
        let mut list = Vec::new();
        for entry in entries {
            let Ok(token) = entry.token.lock() else {
                continue;
            };
            let state = token.state();
            list.push(serde_json::json!({
                "serial": state.params.serial.as_str(),
                "kind": state.params.kind.name(),
                "digits": state.params.digits,
                "user": state.params.owner,
                "locked": state.locked,
                "failed_pins": state.failed_pins,
            }));
        }
        list.sort_by(|a, b| a["serial"].as_str().cmp(&b["serial"].as_str()));
        Ok(serde_json::Value::Array(list))
    }

    fn entry(&self, uid: u32, serial: &str) -> Result<Arc<Entry>, BusError> {
        let not_found = || BusError::NotFound(format!("you have no software token {serial}"));
        let entries = self.entries.read().map_err(|_| not_found())?;
        match entries.get(serial) {
            Some(entry) if entry.owner_uid == uid => Ok(Arc::clone(entry)),
            _ => Err(not_found()),
        }
    }

    async fn with_token<T, F>(
        self: &Arc<Self>,
        uid: u32,
        serial: &str,
        op: F,
    ) -> Result<T, BusError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SoftToken) -> Result<T, OtpError> + Send + 'static,
    {
        self.with_token_bus(uid, serial, move |t| op(t).map_err(otp_error))
            .await
    }

    /// Runs `op` on the blocking pool with `uid`'s token `serial` locked, then persists the
    /// token's state, also when `op` failed (a wrong PIN counts).
    async fn with_token_bus<T, F>(
        self: &Arc<Self>,
        uid: u32,
        serial: &str,
        op: F,
    ) -> Result<T, BusError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SoftToken) -> Result<T, BusError> + Send + 'static,
    {
        let entry = self.entry(uid, serial)?;
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut token = entry
                .token
                .lock()
                .map_err(|_| BusError::Failed("software token unavailable".into()))?;
            let result = op(&mut token);
            // The state changes also on failure (wrong-PIN count, lock): persist either way.
            this.persist(entry.owner_uid, token.state())?;
            result
        })
        .await
        .map_err(|e| BusError::Failed(format!("background task: {e}")))?
    }

    /// The current code of a HOTP/TOTP software token.
    pub async fn code(
        self: &Arc<Self>,
        uid: u32,
        serial: &str,
        pin: Secret<String>,
    ) -> Result<String, BusError> {
        self.with_token(uid, serial, move |t| {
            t.code(pin.expose_secret(), now_unix())
        })
        .await
    }

    /// The answer of a challenge-response software token to `question`.
    pub async fn respond(
        self: &Arc<Self>,
        uid: u32,
        serial: &str,
        pin: Secret<String>,
        question: &str,
    ) -> Result<String, BusError> {
        let question = question.to_owned();
        self.with_token(uid, serial, move |t| {
            t.answer(pin.expose_secret(), &question, now_unix())
        })
        .await
    }

    /// The signature of a signature software token over transaction fields.
    pub async fn sign(
        self: &Arc<Self>,
        uid: u32,
        serial: &str,
        pin: Secret<String>,
        fields: Vec<(String, String)>,
    ) -> Result<String, BusError> {
        self.with_token(uid, serial, move |t| {
            t.sign(pin.expose_secret(), &fields, now_unix())
        })
        .await
    }

    /// Changes the PIN of a software token (the old PIN counts like any PIN check).
    pub async fn change_pin(
        self: &Arc<Self>,
        uid: u32,
        serial: &str,
        old_pin: Secret<String>,
        new_pin: Secret<String>,
    ) -> Result<(), BusError> {
        self.check_pin_format(new_pin.expose_secret())?;
        self.with_token_bus(uid, serial, move |t| {
            with_os_random(|fill| {
                t.change_pin(old_pin.expose_secret(), new_pin.expose_secret(), fill)
            })?
            .map_err(otp_error)
        })
        .await
    }

    /// The unlock challenge of a token that locked itself (the same until it is answered).
    pub async fn unlock_challenge(
        self: &Arc<Self>,
        uid: u32,
        serial: &str,
    ) -> Result<String, BusError> {
        self.with_token_bus(uid, serial, |t| {
            with_os_random(|fill| t.unlock_challenge(fill))?.map_err(otp_error)
        })
        .await
    }

    /// Unlocks a token with the helpdesk's unlock code and seals the server's copy of its seed
    /// under `new_pin`.
    pub async fn unlock(
        self: &Arc<Self>,
        uid: u32,
        serial: &str,
        verifier: TokenService,
        caller: String,
        unlock_code: Secret<String>,
        new_pin: Secret<String>,
    ) -> Result<(), BusError> {
        self.check_pin_format(new_pin.expose_secret())?;
        let name = serial.to_owned();
        self.with_token_bus(uid, serial, move |t| {
            verifier
                .soft_unlock(&caller, &name, |seed| {
                    with_os_random(|fill| {
                        t.unlock(
                            unlock_code.expose_secret(),
                            seed,
                            new_pin.expose_secret(),
                            fill,
                        )
                    })
                    .map_err(|_| OtpError::Random)?
                })
                .map_err(|e| match e {
                    TokenError::Otp(e) => otp_error(e),
                    e => token_error(e),
                })
        })
        .await?;
        tracing::info!(serial, uid, "software token unlocked with a helpdesk code");
        Ok(())
    }
}
