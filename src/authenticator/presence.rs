//! User presence: the trait the key asks, and the policies behind it.
//!
//! The key calls [`UserPresence::request`] synchronously (it runs on a blocking thread when
//! served); a waiting implementation blocks until approved, denied, timed out or cancelled,
//! checking the transaction's cancel flag (CTAPHID_CANCEL, CTAP 2.1 §11.2.9.1.5).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::authenticator::PresencePolicy;

/// The answer to a user-presence request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceOutcome {
    /// The user touched the key.
    Approved,
    /// The user (or the test) refused.
    Denied,
    /// Nobody answered in time (CTAP2_ERR_USER_ACTION_TIMEOUT).
    TimedOut,
    /// The platform sent CTAPHID_CANCEL (CTAP2_ERR_KEEPALIVE_CANCEL).
    Cancelled,
}

/// Asks the user to confirm presence (touch). Implementations for tests and virtual keys only
/// are [`VirtualPresence`] in its automatic modes.
pub trait UserPresence: Send {
    /// Blocks until the user answers. `rp_id` is shown to the user where a UI exists.
    fn request(&mut self, rp_id: &str) -> PresenceOutcome;

    /// Test of user presence without waiting (CTAP1/U2F: the client repeats the request until
    /// the user touches the key). By default the same as [`Self::request`].
    fn poll(&mut self, rp_id: &str) -> PresenceOutcome {
        self.request(rp_id)
    }
}

/// Approves everything at once. For tests and virtual keys only.
#[derive(Debug, Default, Clone, Copy)]
pub struct AutoApproveForTests;

impl UserPresence for AutoApproveForTests {
    fn request(&mut self, _rp_id: &str) -> PresenceOutcome {
        PresenceOutcome::Approved
    }
}

/// Denies everything at once. For tests and virtual keys only.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenyForTests;

impl UserPresence for DenyForTests {
    fn request(&mut self, _rp_id: &str) -> PresenceOutcome {
        PresenceOutcome::Denied
    }
}

#[derive(Debug, Default)]
struct ApprovalState {
    /// A request is waiting (so a UI or test knows to answer).
    pending: bool,
    /// The relying party of the waiting request.
    rp_id: Option<String>,
    /// An answer given (true = approve), consumed by the waiting request.
    answer: Option<bool>,
    /// Number of presence requests seen, for tests.
    requests: u64,
}

/// The handle a test or the daemon uses to answer a key's presence requests
/// (`WaitForApproval`). Cloning shares the same state.
#[derive(Debug, Clone, Default)]
pub struct ApprovalHandle {
    inner: Arc<(Mutex<ApprovalState>, Condvar)>,
}

impl ApprovalHandle {
    /// A new handle with no request pending.
    pub fn new() -> Self {
        Self::default()
    }

    fn answer(&self, approve: bool) {
        let (lock, cvar) = &*self.inner;
        if let Ok(mut state) = lock.lock() {
            state.answer = Some(approve);
            cvar.notify_all();
        }
    }

    /// Approves the waiting request (or the next one, if none waits yet).
    pub fn approve(&self) {
        self.answer(true);
    }

    /// Denies the waiting request (or the next one).
    pub fn deny(&self) {
        self.answer(false);
    }

    /// Whether a request is waiting for an answer, and for which relying party.
    pub fn pending(&self) -> Option<String> {
        let (lock, _) = &*self.inner;
        lock.lock().ok().and_then(|s| {
            if s.pending {
                Some(s.rp_id.clone().unwrap_or_default())
            } else {
                None
            }
        })
    }

    /// How many presence requests the key has made.
    pub fn requests(&self) -> u64 {
        let (lock, _) = &*self.inner;
        lock.lock().map(|s| s.requests).unwrap_or(0)
    }

    /// Blocks until an answer arrives, the timeout passes or `cancel` is raised.
    fn wait(&self, rp_id: &str, timeout: Duration, cancel: &AtomicBool) -> PresenceOutcome {
        let (lock, cvar) = &*self.inner;
        let Ok(mut state) = lock.lock() else {
            return PresenceOutcome::Denied;
        };
        state.pending = true;
        state.requests += 1;
        state.rp_id = Some(rp_id.to_owned());
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            if let Some(approve) = state.answer.take() {
                break if approve {
                    PresenceOutcome::Approved
                } else {
                    PresenceOutcome::Denied
                };
            }
            if cancel.load(Ordering::SeqCst) {
                break PresenceOutcome::Cancelled;
            }
            let now = Instant::now();
            if now >= deadline {
                break PresenceOutcome::TimedOut;
            }
            // Wake at least every 10 ms to notice a cancel.
            let step = (deadline - now).min(Duration::from_millis(10));
            state = match cvar.wait_timeout(state, step) {
                Ok((guard, _)) => guard,
                Err(_) => return PresenceOutcome::Denied,
            };
        };
        state.pending = false;
        state.rp_id = None;
        outcome
    }

    /// Takes an answer given in advance, without waiting; marks a request pending otherwise.
    fn poll(&self, rp_id: &str) -> PresenceOutcome {
        let (lock, _) = &*self.inner;
        let Ok(mut state) = lock.lock() else {
            return PresenceOutcome::Denied;
        };
        state.requests += 1;
        match state.answer.take() {
            Some(true) => {
                state.pending = false;
                PresenceOutcome::Approved
            }
            Some(false) => {
                state.pending = false;
                PresenceOutcome::Denied
            }
            None => {
                state.pending = true;
                state.rp_id = Some(rp_id.to_owned());
                PresenceOutcome::TimedOut
            }
        }
    }

    fn count_request(&self) {
        let (lock, _) = &*self.inner;
        if let Ok(mut state) = lock.lock() {
            state.requests += 1;
        }
    }
}

/// The presence source of a served key: a [`PresencePolicy`] (which a test may change at run
/// time), the approval handle, and the per-transaction flags that `serve()` shares with it
/// (cancel requested; waiting for the user, so KEEPALIVE says UPNEEDED).
#[derive(Debug, Clone)]
pub struct VirtualPresence {
    policy: Arc<Mutex<PresencePolicy>>,
    handle: ApprovalHandle,
    cancel: Arc<AtomicBool>,
    waiting: Arc<AtomicBool>,
}

impl VirtualPresence {
    /// Presence driven by `policy`; answers for `WaitForApproval` come through [`Self::handle`].
    pub fn new(policy: PresencePolicy) -> Self {
        Self {
            policy: Arc::new(Mutex::new(policy)),
            handle: ApprovalHandle::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            waiting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The approval handle (shared by clones).
    pub fn handle(&self) -> ApprovalHandle {
        self.handle.clone()
    }

    /// The current policy.
    pub fn policy(&self) -> PresencePolicy {
        self.policy
            .lock()
            .map(|p| *p)
            .unwrap_or(PresencePolicy::Deny)
    }

    /// Changes the policy for the following requests (a test control).
    pub fn set_policy(&self, policy: PresencePolicy) {
        if let Ok(mut p) = self.policy.lock() {
            *p = policy;
        }
    }

    /// The same policy and approval handle with transaction flags of its own (one per
    /// `serve()` connection, so a CANCEL on one connection does not cancel another's request).
    pub fn for_connection(&self) -> Self {
        Self {
            policy: Arc::clone(&self.policy),
            handle: self.handle.clone(),
            cancel: Arc::new(AtomicBool::new(false)),
            waiting: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Raises the cancel flag of the running transaction.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Clears the cancel flag before a new transaction.
    pub fn begin_transaction(&self) {
        self.cancel.store(false, Ordering::SeqCst);
        self.waiting.store(false, Ordering::SeqCst);
    }

    /// Whether the key is waiting for the user now.
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }
}

impl UserPresence for VirtualPresence {
    fn request(&mut self, rp_id: &str) -> PresenceOutcome {
        if self.cancel.load(Ordering::SeqCst) {
            return PresenceOutcome::Cancelled;
        }
        match self.policy() {
            PresencePolicy::AutoApprove => {
                self.handle.count_request();
                PresenceOutcome::Approved
            }
            PresencePolicy::Deny => {
                self.handle.count_request();
                PresenceOutcome::Denied
            }
            PresencePolicy::WaitForApproval { timeout } => {
                self.waiting.store(true, Ordering::SeqCst);
                let outcome = self.handle.wait(rp_id, timeout, &self.cancel);
                self.waiting.store(false, Ordering::SeqCst);
                outcome
            }
        }
    }

    fn poll(&mut self, rp_id: &str) -> PresenceOutcome {
        match self.policy() {
            PresencePolicy::WaitForApproval { .. } => self.handle.poll(rp_id),
            _ => self.request(rp_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_approval_approve_deny_timeout_cancel() {
        let presence = VirtualPresence::new(PresencePolicy::WaitForApproval {
            timeout: Duration::from_secs(5),
        });
        let handle = presence.handle();
        let mut p = presence.clone();
        let t = std::thread::spawn(move || p.request("example.com"));
        while handle.pending().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(handle.pending().as_deref(), Some("example.com"));
        assert!(presence.is_waiting());
        handle.approve();
        assert_eq!(t.join().unwrap(), PresenceOutcome::Approved);

        let mut p = presence.clone();
        handle.deny();
        assert_eq!(p.request("x"), PresenceOutcome::Denied);

        presence.set_policy(PresencePolicy::WaitForApproval {
            timeout: Duration::from_millis(30),
        });
        assert_eq!(p.request("x"), PresenceOutcome::TimedOut);

        presence.set_policy(PresencePolicy::WaitForApproval {
            timeout: Duration::from_secs(5),
        });
        let mut p2 = presence.clone();
        let t = std::thread::spawn(move || p2.request("x"));
        while handle.pending().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        presence.cancel();
        assert_eq!(t.join().unwrap(), PresenceOutcome::Cancelled);
        assert_eq!(handle.requests(), 4);

        presence.begin_transaction();
        presence.set_policy(PresencePolicy::Deny);
        assert_eq!(p.request("x"), PresenceOutcome::Denied);
        presence.set_policy(PresencePolicy::AutoApprove);
        assert_eq!(p.request("x"), PresenceOutcome::Approved);
    }
}
