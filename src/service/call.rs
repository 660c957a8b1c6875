//! What every method of `org.keygate.Keygate1` does before its own work, written once.
//!
//! A method enters a [`Call`]: admission through the shutdown [`Gate`](super::Gate) (held until
//! the call answers, so that shutdown waits for it), then the caller's credentials from the bus,
//! then the role the method needs (DESIGN.md, issue 4 "Access control"; the shipped D-Bus policy
//! is the first lock). Argument checks come after, so the errors of one call come in a fixed
//! order: `ShuttingDown`, `AccessDenied`, `InvalidArgs`, then the method's own.

use std::sync::Arc;

use tokio::sync::RwLockReadGuard;
use zbus::Connection;
use zbus::message::Header;

use super::Shared;
use super::caller::{Caller, Role};
use super::error::BusError;

/// Who may make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// Any caller the bus reports a uid for (the method then limits them to what is theirs).
    Anyone,
    /// Holders of this role.
    Only(Role),
    /// Holders of either role; others are refused naming the verifier role.
    AdminOrVerifier,
}

impl Allowed {
    /// Administrators only.
    pub(crate) const ADMIN: Self = Self::Only(Role::Admin);
    /// Verifiers only.
    pub(crate) const VERIFIER: Self = Self::Only(Role::Verifier);
}

/// An admitted call: the gate stays entered until this is dropped.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    _admitted: RwLockReadGuard<'a, bool>,
    /// Who is calling.
    pub caller: Arc<Caller>,
}

impl<'a> Call<'a> {
    /// Admits the call whose message header is `header`, if the daemon is not stopping and the
    /// caller is `allowed`.
    pub async fn enter(
        shared: &'a Shared,
        conn: &Connection,
        header: &Header<'_>,
        allowed: Allowed,
    ) -> Result<Self, BusError> {
        let admitted = shared.gate.enter().await?;
        let caller = shared.access.caller(conn, header).await?;
        match allowed {
            Allowed::Anyone => {}
            Allowed::Only(role) => shared.access.require(&caller, role)?,
            Allowed::AdminOrVerifier => {
                if !shared.access.has_role(&caller, Role::Admin) {
                    shared.access.require(&caller, Role::Verifier)?;
                }
            }
        }
        Ok(Self {
            _admitted: admitted,
            caller,
        })
    }

    /// The caller as the audit log names them: `uid=<uid> bus=<unique name>`.
    pub fn audit_name(&self) -> String {
        format!("uid={} bus={}", self.caller.uid, self.caller.unique_name)
    }
}

/// Fails with `InvalidArgs` when `value` is longer than `max` bytes.
pub(crate) fn check_len(what: &str, value: &str, max: usize) -> Result<(), BusError> {
    if value.len() > max {
        Err(BusError::InvalidArgs(format!(
            "{what} is longer than {max} bytes"
        )))
    } else {
        Ok(())
    }
}

/// [`check_len`] over `(name, value, max)` triples, in order.
pub(crate) fn check_lens(checks: &[(&str, &str, usize)]) -> Result<(), BusError> {
    checks
        .iter()
        .try_for_each(|&(what, value, max)| check_len(what, value, max))
}

/// The answer of a method that acts on one named thing: `Ok(())` when the lower layer found it,
/// otherwise `NotFound("no <what>")`.
pub(crate) fn found(found: bool, what: &str) -> Result<(), BusError> {
    if found {
        Ok(())
    } else {
        Err(BusError::NotFound(format!("no {what}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_checks_name_the_first_long_argument() {
        assert!(check_lens(&[("serial", "abc", 3), ("code", "", 0)]).is_ok());
        match check_lens(&[("serial", "abc", 3), ("code", "12345", 4), ("pin", "xx", 1)]) {
            Err(BusError::InvalidArgs(m)) => assert_eq!(m, "code is longer than 4 bytes"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_found_names_the_thing() {
        assert!(found(true, "token x").is_ok());
        match found(false, "token x") {
            Err(BusError::NotFound(m)) => assert_eq!(m, "no token x"),
            other => panic!("{other:?}"),
        }
    }
}
