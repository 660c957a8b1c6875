//! What the client needs from the person in front of the keys, per request. The service
//! implements [`Interaction`] by sending signals to the calling D-Bus connection only and
//! waiting for its answers (PIN, choice, cancel); tests script it.

use crate::hid::BoxFuture;
use crate::secret::Secret;

/// A discoverable credential offered for choice (CTAP 2.1 §6.2.2 `numberOfCredentials`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialChoice {
    /// Credential ID, base64url.
    pub credential_id: String,
    /// `user.name` stored with the credential, when the key returned it.
    pub user_name: Option<String>,
    /// `user.displayName`, when the key returned it.
    pub display_name: Option<String>,
}

/// A request for a PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest {
    /// The authenticator asking.
    pub authenticator: String,
    /// PIN retries left before the key blocks (authenticatorClientPIN getPinRetries).
    pub retries: Option<u32>,
    /// True when the previous PIN was wrong.
    pub previous_attempt_failed: bool,
}

/// User interaction for one WebAuthn request. Every method may be answered with `None`
/// (the user cancelled), which ends the request with `NotAllowedError`.
pub trait Interaction: Send + Sync {
    /// The authenticator waits for a touch (KEEPALIVE UPNEEDED). A notification only.
    fn touch_needed(&self, authenticator: &str);

    /// The authenticator needs its PIN. The answer is zeroized after use.
    fn pin_needed<'a>(&'a self, request: PinRequest) -> BoxFuture<'a, Option<Secret<String>>>;

    /// Several authenticators are present: pick one (index into `labels`).
    fn choose_authenticator<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Option<usize>>;

    /// The key holds several discoverable credentials for the RP: pick one.
    fn choose_credential<'a>(
        &'a self,
        choices: &'a [CredentialChoice],
    ) -> BoxFuture<'a, Option<usize>>;
}

/// Scripted interaction for tests and non-interactive callers: a fixed PIN (or none),
/// always the first authenticator / credential (or a fixed index).
#[derive(Debug, Default)]
pub struct Scripted {
    /// PINs to give, in order; `None` once exhausted.
    pub pins: std::sync::Mutex<Vec<String>>,
    /// Index to choose among authenticators and credentials.
    pub choice: usize,
    /// Touch notifications seen (for assertions in tests).
    pub touches: std::sync::atomic::AtomicUsize,
    /// PIN requests seen (for assertions in tests).
    pub pin_requests: std::sync::Mutex<Vec<PinRequest>>,
}

impl Scripted {
    /// Gives `pins` in order when asked.
    pub fn with_pins(pins: &[&str]) -> Self {
        let mut pins: Vec<String> = pins.iter().map(|p| (*p).to_owned()).collect();
        pins.reverse();
        Self {
            pins: std::sync::Mutex::new(pins),
            ..Self::default()
        }
    }
}

impl Interaction for Scripted {
    fn touch_needed(&self, _authenticator: &str) {
        self.touches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn pin_needed<'a>(&'a self, request: PinRequest) -> BoxFuture<'a, Option<Secret<String>>> {
        Box::pin(async move {
            self.pin_requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(request);
            self.pins
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .map(Secret::new)
        })
    }

    fn choose_authenticator<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Option<usize>> {
        Box::pin(async move { (self.choice < labels.len()).then_some(self.choice) })
    }

    fn choose_credential<'a>(
        &'a self,
        choices: &'a [CredentialChoice],
    ) -> BoxFuture<'a, Option<usize>> {
        Box::pin(async move { (self.choice < choices.len()).then_some(self.choice) })
    }
}
