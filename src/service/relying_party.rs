//! `org.keygate.Keygate1.RelyingParty` at `/org/keygate/Keygate1`: WebAuthn ceremonies for
//! login servers, a thin adapter over [`crate::rp::RelyingParties`] (state in the store: a
//! ceremony may finish after a restart, each state is single use and expires).
//!
//! Roles: the verifier role runs ceremonies and reads credentials; the admin role configures
//! relying parties and deletes credentials.

use std::sync::Arc;

use zbus::message::Header;
use zbus::{Connection, interface};

use super::Shared;
use super::call::{Allowed, Call, found};
use super::error::BusError;
use crate::rp::{RelyingParties, RpConfig, RpError, StartedCeremony};

/// Maps ceremony errors onto named D-Bus errors.
pub(crate) fn rp_error(err: RpError) -> BusError {
    let text = err.to_string();
    match err {
        RpError::UnknownRp(_) | RpError::UnknownCeremony | RpError::NoCredentials { .. } => {
            BusError::NotFound(text)
        }
        RpError::InvalidConfig(_)
        | RpError::InvalidArgument(_)
        | RpError::WrongCeremony { .. }
        | RpError::MalformedResponse(_) => BusError::InvalidArgs(text),
        RpError::CeremonyExpired
        | RpError::Verification(_)
        | RpError::CredentialExists
        | RpError::CredentialRevoked
        | RpError::CounterRegression { .. }
        | RpError::BackupEligibilityLost => BusError::Rejected(text),
        RpError::UserLocked(_) => BusError::Locked(text),
        _ => {
            tracing::error!(error = %text, "relying-party failure");
            BusError::Failed("internal failure of the relying-party service".into())
        }
    }
}

/// The RelyingParty interface.
#[derive(Debug)]
pub struct RelyingParty {
    shared: Arc<Shared>,
    rps: Arc<RelyingParties>,
}

impl RelyingParty {
    /// An adapter over `rps`.
    pub fn new(shared: Arc<Shared>, rps: Arc<RelyingParties>) -> Self {
        Self { shared, rps }
    }

    /// Admits the call, checks the size of the `sized` arguments, then runs `work` on the
    /// blocking pool (the ceremonies read and write the store).
    async fn call<T, F>(
        &self,
        (conn, header): (&Connection, &Header<'_>),
        allowed: Allowed,
        sized: &[(&str, &str)],
        work: F,
    ) -> Result<T, BusError>
    where
        T: Send + 'static,
        F: FnOnce(&RelyingParties) -> Result<T, RpError> + Send + 'static,
    {
        let _call = Call::enter(&self.shared, conn, header, allowed).await?;
        for (what, value) in sized {
            self.shared.check_size(what, value)?;
        }
        self.run(work).await
    }

    /// Starts a ceremony (verifier): (ceremony id, options JSON).
    async fn start<F>(
        &self,
        bus: (&Connection, &Header<'_>),
        start: F,
    ) -> Result<(String, String), BusError>
    where
        F: FnOnce(&RelyingParties) -> Result<StartedCeremony, RpError> + Send + 'static,
    {
        let started = self.call(bus, Allowed::VERIFIER, &[], start).await?;
        Ok((started.ceremony_id, started.options_json))
    }

    /// Finishes a ceremony (verifier) with the client's response JSON.
    async fn finish<T: Send + 'static>(
        &self,
        bus: (&Connection, &Header<'_>),
        (ceremony_id, response_json): (&str, &str),
        finish: fn(&RelyingParties, &str, &str) -> Result<T, RpError>,
    ) -> Result<T, BusError> {
        let sized = [("response_json", response_json)];
        let (id, response) = (ceremony_id.to_owned(), response_json.to_owned());
        self.call(bus, Allowed::VERIFIER, &sized, move |rps| {
            finish(rps, &id, &response)
        })
        .await
    }

    async fn run<T, F>(&self, call: F) -> Result<T, BusError>
    where
        T: Send + 'static,
        F: FnOnce(&RelyingParties) -> Result<T, RpError> + Send + 'static,
    {
        let rps = Arc::clone(&self.rps);
        tokio::task::spawn_blocking(move || call(&rps))
            .await
            .map_err(|e| BusError::Failed(format!("background task: {e}")))?
            .map_err(rp_error)
    }
}

/// JSON text of a list the caller may read.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String, BusError> {
    serde_json::to_string(value).map_err(|e| BusError::Failed(format!("encoding: {e}")))
}

#[interface(name = "org.keygate.Keygate1.RelyingParty")]
impl RelyingParty {
    /// Starts registering a credential for `user` at `rp_id` (verifier): (ceremony id,
    /// PublicKeyCredentialCreationOptionsJSON).
    #[zbus(out_args("ceremony_id", "options_json"))]
    async fn start_registration(
        &self,
        rp_id: &str,
        user: &str,
        display_name: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String), BusError> {
        let (rp_id, user, display_name) =
            (rp_id.to_owned(), user.to_owned(), display_name.to_owned());
        self.start((conn, &header), move |rps| {
            rps.start_registration(&rp_id, &user, &display_name)
        })
        .await
    }

    /// Finishes a registration with the client's RegistrationResponseJSON (verifier); returns
    /// the new credential id (base64url).
    #[zbus(out_args("credential_id"))]
    async fn finish_registration(
        &self,
        ceremony_id: &str,
        response_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let ceremony = (ceremony_id, response_json);
        let finish = RelyingParties::finish_registration;
        let info = self.finish((conn, &header), ceremony, finish).await?;
        tracing::info!(rp = %info.rp_id, user = %info.user_login, "credential registered");
        Ok(info.credential_id)
    }

    /// Starts authenticating `user` at `rp_id` (verifier): (ceremony id,
    /// PublicKeyCredentialRequestOptionsJSON).
    #[zbus(out_args("ceremony_id", "options_json"))]
    async fn start_authentication(
        &self,
        rp_id: &str,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String), BusError> {
        let (rp_id, user) = (rp_id.to_owned(), user.to_owned());
        self.start((conn, &header), move |rps| {
            rps.start_authentication(&rp_id, &user)
        })
        .await
    }

    /// Finishes an authentication with the client's AuthenticationResponseJSON (verifier);
    /// returns `{"rp_id", "user", "credential_id", "counter", "user_verified",
    /// "backup_eligible", "backup_state"}`. The counter moves by compare-and-set before the
    /// answer.
    #[zbus(out_args("result_json"))]
    async fn finish_authentication(
        &self,
        ceremony_id: &str,
        response_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let ceremony = (ceremony_id, response_json);
        let finish = RelyingParties::finish_authentication;
        let outcome = self.finish((conn, &header), ceremony, finish).await?;
        Ok(serde_json::json!({
            "rp_id": outcome.rp_id,
            "user": outcome.user_login,
            "credential_id": outcome.credential_id,
            "counter": outcome.counter,
            "user_verified": outcome.user_verified,
            "backup_eligible": outcome.backup_eligible,
            "backup_state": outcome.backup_state,
        })
        .to_string())
    }

    /// The configured relying parties as JSON (admin or verifier).
    #[zbus(out_args("relying_parties_json"))]
    async fn list_relying_parties(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let _call = Call::enter(&self.shared, conn, &header, Allowed::AdminOrVerifier).await?;
        to_json(&self.rps.list())
    }

    /// Adds or replaces a relying party from an RpConfig JSON (admin): `{"id", "name",
    /// "origins", "attestation": {"kind": "none"} | {"kind": "ca_list", "ca_pems"},
    /// "user_verification": "required" | "preferred"}`.
    async fn configure(
        &self,
        config_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let call = Call::enter(&self.shared, conn, &header, Allowed::ADMIN).await?;
        self.shared.check_size("config_json", config_json)?;
        let config: RpConfig = serde_json::from_str(config_json)
            .map_err(|e| BusError::InvalidArgs(format!("config_json: {e}")))?;
        tracing::info!(rp = %config.id, uid = call.caller.uid, "relying party configured");
        self.run(move |rps| rps.configure(config)).await
    }

    /// Removes a relying party with its credentials (admin).
    async fn remove(
        &self,
        rp_id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let id = rp_id.to_owned();
        let removed = self
            .call((conn, &header), Allowed::ADMIN, &[], move |rps| {
                rps.remove(&id)
            })
            .await?;
        found(removed, &format!("relying party {rp_id}"))
    }

    /// The credentials (public data) of `user` at `rp_id` as JSON (admin or verifier).
    #[zbus(out_args("credentials_json"))]
    async fn credentials(
        &self,
        rp_id: &str,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let (rp_id, user) = (rp_id.to_owned(), user.to_owned());
        let list = self
            .call((conn, &header), Allowed::AdminOrVerifier, &[], move |rps| {
                rps.credentials(&rp_id, &user)
            })
            .await?;
        to_json(&list)
    }

    /// Deletes one credential (admin).
    async fn delete_credential(
        &self,
        rp_id: &str,
        credential_id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let (rp, id) = (rp_id.to_owned(), credential_id.to_owned());
        let deleted = self
            .call((conn, &header), Allowed::ADMIN, &[], move |rps| {
                rps.delete_credential(&rp, &id)
            })
            .await?;
        found(deleted, &format!("credential {credential_id}"))
    }
}
