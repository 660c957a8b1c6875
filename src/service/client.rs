//! Client-side proxies of keygate's interfaces, used by keygatectl, the demo, tests and benches.

use zbus::{OwnedObjectPath, proxy};

/// `org.keygate.Keygate1.Manager`.
#[proxy(
    interface = "org.keygate.Keygate1.Manager",
    default_service = "org.keygate.Keygate1",
    default_path = "/org/keygate/Keygate1"
)]
pub trait Manager {
    /// keygate's version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    /// (path, kind, name, owner uid) of each device the caller may use.
    fn list_devices(&self) -> zbus::Result<Vec<(OwnedObjectPath, String, String, u32)>>;

    /// A device appeared.
    #[zbus(signal)]
    fn device_added(
        &self,
        path: OwnedObjectPath,
        kind: String,
        name: String,
        owner: u32,
    ) -> zbus::Result<()>;

    /// A device went away.
    #[zbus(signal)]
    fn device_removed(&self, path: OwnedObjectPath) -> zbus::Result<()>;
}

/// The D-Bus error name of a failed call (`org.keygate.Keygate1.Error.NotFound`), if any.
pub fn error_name(err: &zbus::Error) -> Option<String> {
    match err {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_owned()),
        zbus::Error::FDO(fdo) => Some(format!("{}", zbus::DBusError::name(fdo.as_ref()))),
        _ => None,
    }
}

/// `org.keygate.Keygate1.Tokens`.
#[proxy(
    interface = "org.keygate.Keygate1.Tokens",
    default_service = "org.keygate.Keygate1",
    default_path = "/org/keygate/Keygate1"
)]
pub trait Tokens {
    /// Creates a token from a JSON spec; returns (serial, otpauth URI, QR code as text).
    fn create(&self, spec_json: &str) -> zbus::Result<(String, String, String)>;
    /// Imports tokens from PSKC XML; returns their serials.
    fn import_pskc(&self, pskc_xml: &str, key_json: &str) -> zbus::Result<Vec<String>>;
    /// Exports tokens as PSKC XML (seeds encrypted under the given key).
    fn export_pskc(&self, serials: &[&str], key_json: &str) -> zbus::Result<String>;
    /// Tokens of a user ("" = all) as JSON.
    fn list(&self, user: &str) -> zbus::Result<String>;
    /// Verifies an OTP code: (accepted, reason).
    fn verify_code(&self, serial: &str, code: &str) -> zbus::Result<(bool, String)>;
    /// Issues an OCRA challenge: (challenge id, question).
    fn issue_challenge(&self, serial: &str) -> zbus::Result<(String, String)>;
    /// Verifies a challenge response: (accepted, reason).
    fn verify_response(&self, challenge_id: &str, response: &str) -> zbus::Result<(bool, String)>;
    /// Issues a transaction to sign: (challenge id, question).
    fn issue_transaction(
        &self,
        serial: &str,
        fields: &[(&str, &str)],
    ) -> zbus::Result<(String, String)>;
    /// Verifies a transaction signature: (accepted, reason).
    fn verify_signature(
        &self,
        challenge_id: &str,
        fields: &[(&str, &str)],
        signature: &str,
    ) -> zbus::Result<(bool, String)>;
    /// HOTP resync with two consecutive codes.
    fn resync(&self, serial: &str, code1: &str, code2: &str) -> zbus::Result<(bool, String)>;
    /// Unlocks a token.
    fn unlock(&self, serial: &str) -> zbus::Result<()>;
    /// Unlocks a user.
    fn unlock_user(&self, user: &str) -> zbus::Result<()>;
    /// Deletes a token.
    fn delete(&self, serial: &str) -> zbus::Result<()>;
    /// PANIC: revokes every factor of a user; returns (tokens, other factors) revoked.
    fn revoke_user(&self, user: &str) -> zbus::Result<(u64, u64)>;
    /// The caller's software tokens as JSON.
    fn soft_list(&self) -> zbus::Result<String>;
    /// A software token's current code, unlocked by its PIN.
    fn soft_code(&self, serial: &str, pin: &str) -> zbus::Result<String>;
    /// A software token's response to a challenge question.
    fn soft_respond(&self, serial: &str, pin: &str, question: &str) -> zbus::Result<String>;
    /// A software token's signature over transaction fields.
    fn soft_sign(&self, serial: &str, pin: &str, fields: &[(&str, &str)]) -> zbus::Result<String>;
    /// Changes a software token's PIN.
    fn soft_change_pin(&self, serial: &str, old_pin: &str, new_pin: &str) -> zbus::Result<()>;
    /// The unlock challenge of a software token that locked itself.
    fn soft_unlock_challenge(&self, serial: &str) -> zbus::Result<String>;
    /// Unlocks a software token with the helpdesk's code and sets a new PIN.
    fn soft_unlock(&self, serial: &str, unlock_code: &str, new_pin: &str) -> zbus::Result<()>;
    /// The helpdesk's unlock code for a software token's unlock challenge (admin).
    fn soft_unlock_code(&self, serial: &str, challenge: &str) -> zbus::Result<String>;
    /// Audit records (JSON array) of a token and/or user ("" = any), newest `limit` (admin).
    fn audit_log(&self, serial: &str, user: &str, limit: u32) -> zbus::Result<String>;
}

/// `org.keygate.Keygate1.Virtual`: software security keys owned by the caller.
#[proxy(
    interface = "org.keygate.Keygate1.Virtual",
    default_service = "org.keygate.Keygate1",
    default_path = "/org/keygate/Keygate1"
)]
pub trait Virtual {
    /// Creates a software key from JSON options; returns its Device object path.
    fn create(&self, options_json: &str) -> zbus::Result<OwnedObjectPath>;
    /// The caller's software keys: (path, name).
    fn list(&self) -> zbus::Result<Vec<(OwnedObjectPath, String)>>;
    /// Removes one of the caller's software keys.
    fn remove(&self, path: &zbus::ObjectPath<'_>) -> zbus::Result<()>;
    /// Approves a pending user-presence request.
    fn approve(&self, path: &zbus::ObjectPath<'_>) -> zbus::Result<bool>;
    /// Simulates unplugging and replugging the key.
    fn power_cycle(&self, path: &zbus::ObjectPath<'_>) -> zbus::Result<()>;
    /// Sets the presence policy: `auto`, `deny` or `wait`.
    fn set_presence(&self, path: &zbus::ObjectPath<'_>, policy: &str) -> zbus::Result<()>;
    /// The credentials stored on a key, as JSON (public data).
    fn stored_credentials(&self, path: &zbus::ObjectPath<'_>) -> zbus::Result<String>;
    /// Removes one stored credential (base64url id).
    fn remove_credential(
        &self,
        path: &zbus::ObjectPath<'_>,
        credential_id: &str,
    ) -> zbus::Result<bool>;
    /// The path of a key's socket (keys created with `"socket": true`).
    fn socket(&self, path: &zbus::ObjectPath<'_>) -> zbus::Result<String>;
    /// A new connection to a key: the host end of a `SOCK_SEQPACKET` socket pair.
    fn connect(&self, path: &zbus::ObjectPath<'_>) -> zbus::Result<zbus::OwnedFd>;
}

/// `org.keygate.Keygate1.WebAuthn`: the WebAuthn client.
#[proxy(
    interface = "org.keygate.Keygate1.WebAuthn",
    default_service = "org.keygate.Keygate1",
    default_path = "/org/keygate/Keygate1"
)]
pub trait WebAuthn {
    /// navigator.credentials.create(): returns RegistrationResponseJSON.
    fn make_credential(
        &self,
        request_id: &str,
        origin: &str,
        options_json: &str,
    ) -> zbus::Result<String>;
    /// navigator.credentials.get(): returns AuthenticationResponseJSON.
    fn get_assertion(
        &self,
        request_id: &str,
        origin: &str,
        options_json: &str,
    ) -> zbus::Result<String>;
    /// Supplies the PIN a pending request asked for.
    fn provide_pin(&self, request_id: &str, pin: &str) -> zbus::Result<()>;
    /// Chooses among the keys or credentials a pending request offered.
    fn choose(&self, request_id: &str, index: u32) -> zbus::Result<()>;
    /// Cancels a pending request.
    fn cancel(&self, request_id: &str) -> zbus::Result<()>;
    /// User interaction needed by a pending request (sent to the caller only).
    #[zbus(signal)]
    fn interaction(
        &self,
        request_id: String,
        kind: String,
        detail_json: String,
    ) -> zbus::Result<()>;
}

/// `org.keygate.Keygate1.RelyingParty`: registration and authentication ceremonies.
#[proxy(
    interface = "org.keygate.Keygate1.RelyingParty",
    default_service = "org.keygate.Keygate1",
    default_path = "/org/keygate/Keygate1"
)]
pub trait RelyingParty {
    /// Starts a registration: (ceremony id, PublicKeyCredentialCreationOptionsJSON).
    fn start_registration(
        &self,
        rp_id: &str,
        user: &str,
        display_name: &str,
    ) -> zbus::Result<(String, String)>;
    /// Finishes a registration with RegistrationResponseJSON; returns the credential id.
    fn finish_registration(&self, ceremony_id: &str, response_json: &str) -> zbus::Result<String>;
    /// Starts an authentication: (ceremony id, PublicKeyCredentialRequestOptionsJSON).
    fn start_authentication(&self, rp_id: &str, user: &str) -> zbus::Result<(String, String)>;
    /// Finishes an authentication with AuthenticationResponseJSON; returns the result as JSON.
    fn finish_authentication(&self, ceremony_id: &str, response_json: &str)
    -> zbus::Result<String>;
    /// The configured relying parties as JSON.
    fn list_relying_parties(&self) -> zbus::Result<String>;
    /// Adds or replaces a relying party (RpConfig JSON).
    fn configure(&self, config_json: &str) -> zbus::Result<()>;
    /// Removes a relying party.
    fn remove(&self, rp_id: &str) -> zbus::Result<()>;
    /// A user's credentials at an RP as JSON.
    fn credentials(&self, rp_id: &str, user: &str) -> zbus::Result<String>;
    /// Deletes one credential.
    fn delete_credential(&self, rp_id: &str, credential_id: &str) -> zbus::Result<()>;
}
