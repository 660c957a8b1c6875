//! Who is calling: the caller's uid and groups, read from the bus (`GetConnectionCredentials`,
//! which dbus-daemon fills from `SO_PEERCRED` / `SO_PEERGROUPS`), and the roles they give.
//!
//! Roles (DESIGN.md, issue 4 "Access control"):
//! - root, the admin group and `admin_uids` administer tokens and relying parties, import PSKC, unlock;
//! - root, the verifier group and `verifier_uids` call the RelyingParty and token-check methods;
//! - everyone else may use the WebAuthn client and their own software keys and tokens.
//!
//! Unique bus names are never reused while a bus runs, so the credentials of a unique name are
//! cached (bounded) to keep a bus round trip off each verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zbus::Connection;
use zbus::message::Header;
use zbus::names::BusName;

use super::config::Config;
use super::error::BusError;

/// Most cached callers before the cache is cleared.
const CACHE_LIMIT: usize = 4096;

/// The identity of one D-Bus caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's unique bus name (`:1.42`).
    pub unique_name: String,
    /// Unix uid of the connection's process.
    pub uid: u32,
    /// Primary and supplementary gids.
    pub gids: Vec<u32>,
}

/// A role that a method requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Administers tokens and relying parties.
    Admin,
    /// Calls token-check and RelyingParty methods.
    Verifier,
}

/// Access decisions from the configuration.
#[derive(Debug)]
pub struct Access {
    admin_gid: Option<u32>,
    verifier_gid: Option<u32>,
    admin_uids: Vec<u32>,
    verifier_uids: Vec<u32>,
    cache: Mutex<HashMap<String, Arc<Caller>>>,
}

fn resolve_group(name: &str) -> Option<u32> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Some(group.gid.as_raw()),
        Ok(None) => {
            tracing::info!(
                group = name,
                "group does not exist; its role is given to nobody"
            );
            None
        }
        Err(e) => {
            tracing::warn!(group = name, error = %e, "cannot resolve group");
            None
        }
    }
}

impl Access {
    /// Resolves the configured group names (once, at startup).
    pub fn new(config: &Config) -> Self {
        Self {
            admin_gid: resolve_group(&config.admin_group),
            verifier_gid: resolve_group(&config.verifier_group),
            admin_uids: config.admin_uids.clone(),
            verifier_uids: config.verifier_uids.clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `caller` holds `role`.
    pub fn has_role(&self, caller: &Caller, role: Role) -> bool {
        if caller.uid == 0 {
            return true;
        }
        let (gid, uids) = match role {
            Role::Admin => (self.admin_gid, &self.admin_uids),
            Role::Verifier => (self.verifier_gid, &self.verifier_uids),
        };
        uids.contains(&caller.uid) || gid.is_some_and(|gid| caller.gids.contains(&gid))
    }

    /// Fails with `AccessDenied` unless `caller` holds `role`.
    pub fn require(&self, caller: &Caller, role: Role) -> Result<(), BusError> {
        if self.has_role(caller, role) {
            Ok(())
        } else {
            tracing::info!(uid = caller.uid, ?role, "access denied");
            Err(BusError::AccessDenied(format!(
                "uid {} does not have the {} role",
                caller.uid,
                match role {
                    Role::Admin => "admin",
                    Role::Verifier => "verifier",
                }
            )))
        }
    }

    /// The caller of the message whose header is `header`.
    pub async fn caller(
        &self,
        conn: &Connection,
        header: &Header<'_>,
    ) -> Result<Arc<Caller>, BusError> {
        let Some(sender) = header.sender() else {
            return Err(BusError::AccessDenied(
                "message without a sender (peer-to-peer calls are not served)".into(),
            ));
        };
        let unique = sender.as_str().to_owned();
        if let Ok(cache) = self.cache.lock()
            && let Some(caller) = cache.get(&unique)
        {
            return Ok(Arc::clone(caller));
        }
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        let creds = dbus
            .get_connection_credentials(BusName::from(sender.to_owned()))
            .await
            .map_err(|e| BusError::AccessDenied(format!("cannot read caller credentials: {e}")))?;
        let Some(uid) = creds.unix_user_id() else {
            return Err(BusError::AccessDenied("caller has no unix uid".into()));
        };
        let gids = match creds.unix_group_ids() {
            Some(gids) => gids.clone(),
            None => groups_of_uid(uid),
        };
        let caller = Arc::new(Caller {
            unique_name: unique.clone(),
            uid,
            gids,
        });
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(unique, Arc::clone(&caller));
        }
        Ok(caller)
    }
}

/// The groups of `uid` from the user database (when the bus does not report them).
fn groups_of_uid(uid: u32) -> Vec<u32> {
    let user = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user,
        _ => return Vec::new(),
    };
    let Ok(name) = std::ffi::CString::new(user.name.as_bytes()) else {
        return vec![user.gid.as_raw()];
    };
    match nix::unistd::getgrouplist(&name, user.gid) {
        Ok(gids) => gids.into_iter().map(|g| g.as_raw()).collect(),
        Err(_) => vec![user.gid.as_raw()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access {
            admin_gid: Some(500),
            verifier_gid: Some(501),
            admin_uids: vec![1000],
            verifier_uids: vec![1001],
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn caller(uid: u32, gids: &[u32]) -> Caller {
        Caller {
            unique_name: ":1.1".into(),
            uid,
            gids: gids.to_vec(),
        }
    }

    #[test]
    fn roles() {
        let a = access();
        assert!(a.has_role(&caller(0, &[]), Role::Admin));
        assert!(a.has_role(&caller(0, &[]), Role::Verifier));
        assert!(a.has_role(&caller(1000, &[]), Role::Admin));
        assert!(!a.has_role(&caller(1000, &[]), Role::Verifier));
        assert!(a.has_role(&caller(1001, &[]), Role::Verifier));
        assert!(a.has_role(&caller(65534, &[65534, 500]), Role::Admin));
        assert!(!a.has_role(&caller(65534, &[65534, 500]), Role::Verifier));
        assert!(a.has_role(&caller(65534, &[501]), Role::Verifier));
        assert!(!a.has_role(&caller(65534, &[65534]), Role::Admin));
        assert!(matches!(
            a.require(&caller(65534, &[]), Role::Admin),
            Err(BusError::AccessDenied(_))
        ));
    }
}
