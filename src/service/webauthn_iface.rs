//! `org.keygate.Keygate1.WebAuthn` at `/org/keygate/Keygate1`: the WebAuthn client
//! ([`crate::webauthn::WebAuthnClient`]) for callers that are not browsers.
//!
//! `MakeCredential` / `GetAssertion` take a request id chosen by the caller, the caller's origin
//! and the WebAuthn L3 options JSON, and answer with the JSON `PublicKeyCredential.toJSON()`
//! gives. While a request runs, the user interaction it needs is sent as the `Interaction`
//! signal **to the calling connection only** (a unicast signal with a destination, never a
//! broadcast): `touch`, `pin` (with retries left), `choose-authenticator`,
//! `choose-credential`. The caller answers with `ProvidePin`, `Choose` or `Cancel`, which only
//! the same connection may send for its own request ids. Errors carry the DOMException names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use zbus::message::Header;
use zbus::{Connection, interface};

use super::Shared;
use super::call::{Allowed, Call};
use super::devices::DeviceHandle;
use super::error::BusError;
use super::names::{ROOT_PATH, WEBAUTHN_IFACE};
use crate::hid::BoxFuture;
use crate::secret::Secret;
use crate::webauthn::{
    Authenticator, CredentialChoice, Interaction, PinRequest, WebAuthnClient, WebAuthnError,
};

/// Longest request id.
const MAX_REQUEST_ID: usize = 128;
/// Most concurrent requests per connection.
const MAX_PENDING_PER_CONNECTION: usize = 8;

/// The answers a pending request waits for.
#[derive(Debug, Default)]
struct Waiters {
    pin: Option<oneshot::Sender<Option<Secret<String>>>>,
    choice: Option<oneshot::Sender<Option<usize>>>,
}

/// A running request.
#[derive(Debug)]
struct Pending {
    cancel: CancellationToken,
    waiters: Mutex<Waiters>,
}

type PendingKey = (String, String);

/// Maps the client's DOMException errors onto D-Bus error names.
fn dom_error(err: WebAuthnError) -> BusError {
    let message = err.message().to_owned();
    match err {
        WebAuthnError::NotAllowed(_) => BusError::NotAllowedError(message),
        WebAuthnError::InvalidState(_) => BusError::InvalidStateError(message),
        WebAuthnError::Security(_) => BusError::SecurityError(message),
        WebAuthnError::NotSupported(_) => BusError::NotSupportedError(message),
        WebAuthnError::Abort(_) => BusError::AbortError(message),
        WebAuthnError::Constraint(_) => BusError::ConstraintError(message),
        WebAuthnError::Type(_) => BusError::TypeError(message),
        WebAuthnError::Encoding(_) => BusError::EncodingError(message),
        WebAuthnError::Syntax(_) => BusError::SyntaxError(message),
        _ => BusError::Failed(message),
    }
}

/// [`Interaction`] through unicast signals to one connection.
struct BusInteraction {
    conn: Connection,
    destination: String,
    request_id: String,
    pending: Arc<Pending>,
}

/// Where a request keeps the sender of one kind of answer.
type Slot<T> = fn(&mut Waiters) -> &mut Option<oneshot::Sender<Option<T>>>;

impl BusInteraction {
    /// The `Interaction` signal to the calling connection only; it owns what it sends, so it
    /// can also be spawned from a synchronous callback.
    fn signal(
        &self,
        kind: &'static str,
        detail: serde_json::Value,
    ) -> impl Future<Output = ()> + Send + 'static {
        let conn = self.conn.clone();
        let destination = self.destination.clone();
        let body = (self.request_id.clone(), kind, detail.to_string());
        async move {
            if let Err(e) = conn
                .emit_signal(
                    Some(destination.as_str()),
                    ROOT_PATH,
                    WEBAUTHN_IFACE,
                    "Interaction",
                    &body,
                )
                .await
            {
                tracing::debug!(error = %e, kind, "interaction signal not delivered");
            }
        }
    }

    /// Asks the caller (signal `kind` with `detail`) and waits for the answer that `slot`
    /// receives, or for the request to be cancelled.
    async fn ask<T>(
        &self,
        slot: Slot<T>,
        kind: &'static str,
        detail: serde_json::Value,
    ) -> Option<T> {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut waiters) = self.pending.waiters.lock() {
            *slot(&mut waiters) = Some(sender);
        }
        self.signal(kind, detail).await;
        tokio::select! {
            answer = receiver => answer.ok().flatten(),
            () = self.pending.cancel.cancelled() => None,
        }
    }
}

impl Interaction for BusInteraction {
    fn touch_needed(&self, authenticator: &str) {
        tokio::spawn(self.signal(
            "touch",
            serde_json::json!({ "authenticator": authenticator, "message": "Touch your security key" }),
        ));
    }

    fn pin_needed<'a>(&'a self, request: PinRequest) -> BoxFuture<'a, Option<Secret<String>>> {
        let detail = serde_json::json!({
            "authenticator": request.authenticator,
            "retries": request.retries,
            "previous_attempt_failed": request.previous_attempt_failed,
        });
        Box::pin(self.ask(|w| &mut w.pin, "pin", detail))
    }

    fn choose_authenticator<'a>(&'a self, labels: &'a [String]) -> BoxFuture<'a, Option<usize>> {
        let detail = serde_json::json!({ "authenticators": labels });
        Box::pin(self.ask(|w| &mut w.choice, "choose-authenticator", detail))
    }

    fn choose_credential<'a>(
        &'a self,
        choices: &'a [CredentialChoice],
    ) -> BoxFuture<'a, Option<usize>> {
        let list: Vec<serde_json::Value> = choices
            .iter()
            .map(|c| {
                serde_json::json!({
                    "credential_id": c.credential_id,
                    "user_name": c.user_name,
                    "display_name": c.display_name,
                })
            })
            .collect();
        let detail = serde_json::json!({ "credentials": list });
        Box::pin(self.ask(|w| &mut w.choice, "choose-credential", detail))
    }
}

/// Hands `value` to the answer a request waits for in `slot`; `InvalidStateError` when it is
/// not waiting for `what`.
fn answer<T>(
    pending: &Pending,
    slot: Slot<T>,
    value: Option<T>,
    what: &str,
) -> Result<(), BusError> {
    let sender = pending
        .waiters
        .lock()
        .ok()
        .and_then(|mut waiters| slot(&mut waiters).take());
    match sender {
        Some(sender) => {
            let _ = sender.send(value);
            Ok(())
        }
        None => Err(BusError::InvalidStateError(format!(
            "the request is not waiting for {what}"
        ))),
    }
}

/// A finished ceremony as the JSON `PublicKeyCredential.toJSON()` gives.
fn response_json<T: serde::Serialize>(
    result: Result<T, WebAuthnError>,
) -> Result<String, BusError> {
    let response = result.map_err(dom_error)?;
    serde_json::to_string(&response).map_err(|e| BusError::EncodingError(e.to_string()))
}

/// The WebAuthn interface.
#[derive(Debug)]
pub struct WebAuthn {
    shared: Arc<Shared>,
    /// Loaded on first use (the Public Suffix List takes a few ms to parse; startup stays fast).
    client: std::sync::OnceLock<Option<WebAuthnClient>>,
    pending: Mutex<HashMap<PendingKey, Arc<Pending>>>,
}

/// Removes a request from the pending map when it ends, however it ends.
struct PendingGuard<'a> {
    map: &'a Mutex<HashMap<PendingKey, Arc<Pending>>>,
    key: PendingKey,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&self.key);
        }
    }
}

#[derive(Clone, Copy)]
enum Ceremony {
    Create,
    Get,
}

impl WebAuthn {
    /// The interface; without a Public Suffix List the client methods answer `NotAvailable`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            client: std::sync::OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self) -> Option<&WebAuthnClient> {
        self.client
            .get_or_init(|| match WebAuthnClient::with_system_psl() {
                Ok(client) => Some(client.with_enterprise_rp_ids(
                    self.shared.config.enterprise_attestation_rp_ids.clone(),
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "WebAuthn client unavailable (install the publicsuffix package)");
                    None
                }
            })
            .as_ref()
    }

    /// One of the caller's running requests (not behind the gate: a request can still be
    /// answered or cancelled while the daemon stops).
    async fn pending_for(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        request_id: &str,
    ) -> Result<Arc<Pending>, BusError> {
        let caller = self.shared.access.caller(conn, header).await?;
        self.pending
            .lock()
            .ok()
            .and_then(|map| {
                map.get(&(caller.unique_name.clone(), request_id.to_owned()))
                    .cloned()
            })
            .ok_or_else(|| BusError::NotFound(format!("no pending request {request_id:?}")))
    }

    /// Runs one ceremony for the caller: `(request_id, origin, options_json)` as the methods
    /// received them.
    async fn run(
        &self,
        ceremony: Ceremony,
        (request_id, origin, options_json): (&str, &str, &str),
        (conn, header): (&Connection, &Header<'_>),
    ) -> Result<String, BusError> {
        let call = Call::enter(&self.shared, conn, header, Allowed::Anyone).await?;
        let caller = &call.caller;
        let Some(client) = self.client() else {
            return Err(BusError::NotAvailable(
                "the WebAuthn client needs the Public Suffix List (Debian package publicsuffix)"
                    .into(),
            ));
        };
        if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID {
            return Err(BusError::InvalidArgs(format!(
                "request_id is 1 to {MAX_REQUEST_ID} bytes"
            )));
        }
        if origin.len() > 2048 {
            return Err(BusError::SecurityError("origin too long".into()));
        }
        self.shared.check_size("options_json", options_json)?;

        let key: PendingKey = (caller.unique_name.clone(), request_id.to_owned());
        let pending = Arc::new(Pending {
            cancel: self.shared.cancel.child_token(),
            waiters: Mutex::new(Waiters::default()),
        });
        {
            let mut map = self
                .pending
                .lock()
                .map_err(|_| BusError::Failed("request table unavailable".into()))?;
            if map.contains_key(&key) {
                return Err(BusError::InvalidStateError(format!(
                    "request {request_id:?} is already running"
                )));
            }
            if map.keys().filter(|(c, _)| c == &caller.unique_name).count()
                >= MAX_PENDING_PER_CONNECTION
            {
                return Err(BusError::NotAllowedError(
                    "too many concurrent requests on this connection".into(),
                ));
            }
            map.insert(key.clone(), Arc::clone(&pending));
        }
        let _cleanup = PendingGuard {
            map: &self.pending,
            key,
        };
        let interaction = BusInteraction {
            conn: conn.clone(),
            destination: caller.unique_name.clone(),
            request_id: request_id.to_owned(),
            pending: Arc::clone(&pending),
        };

        // The devices this caller may use that are not busy with another request.
        let handles: Vec<Arc<DeviceHandle>> = self.shared.devices.usable_by(caller);
        let mut guards = Vec::with_capacity(handles.len());
        for handle in &handles {
            if let Ok(guard) = handle.device.try_lock() {
                guards.push(guard);
            }
        }
        let mut authenticators: Vec<&mut dyn Authenticator> = guards
            .iter_mut()
            .map(|g| &mut **g as &mut dyn Authenticator)
            .collect();
        tracing::info!(
            uid = caller.uid,
            origin,
            devices = authenticators.len(),
            "WebAuthn {}",
            match ceremony {
                Ceremony::Create => "create",
                Ceremony::Get => "get",
            }
        );
        let (authenticators, cancel) = (&mut authenticators, &pending.cancel);
        let result = match ceremony {
            Ceremony::Create => response_json(
                client
                    .make_credential(origin, options_json, authenticators, &interaction, cancel)
                    .await,
            ),
            Ceremony::Get => response_json(
                client
                    .get_assertion(origin, options_json, authenticators, &interaction, cancel)
                    .await,
            ),
        };
        if let Err(e) = &result {
            tracing::info!(uid = caller.uid, error = ?e, "WebAuthn request failed");
        }
        result
    }
}

#[interface(name = "org.keygate.Keygate1.WebAuthn")]
impl WebAuthn {
    /// `navigator.credentials.create({publicKey})` for `origin` with
    /// PublicKeyCredentialCreationOptionsJSON; returns RegistrationResponseJSON. `request_id`
    /// (chosen by the caller, unique among its running requests) names the request in
    /// `Interaction` signals and in `ProvidePin` / `Choose` / `Cancel`.
    #[zbus(out_args("registration_response_json"))]
    async fn make_credential(
        &self,
        request_id: &str,
        origin: &str,
        options_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let request = (request_id, origin, options_json);
        self.run(Ceremony::Create, request, (conn, &header)).await
    }

    /// `navigator.credentials.get({publicKey})` for `origin` with
    /// PublicKeyCredentialRequestOptionsJSON; returns AuthenticationResponseJSON.
    #[zbus(out_args("authentication_response_json"))]
    async fn get_assertion(
        &self,
        request_id: &str,
        origin: &str,
        options_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let request = (request_id, origin, options_json);
        self.run(Ceremony::Get, request, (conn, &header)).await
    }

    /// Answers a `pin` interaction of one of the caller's running requests.
    async fn provide_pin(
        &self,
        request_id: &str,
        pin: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let pending = self.pending_for(conn, &header, request_id).await?;
        if pin.len() > 63 {
            return Err(BusError::InvalidArgs("a PIN is at most 63 bytes".into()));
        }
        let pin = Some(Secret::new(pin.to_owned()));
        answer(&pending, |w| &mut w.pin, pin, "a PIN")
    }

    /// Answers a `choose-authenticator` or `choose-credential` interaction (index into the
    /// offered list).
    async fn choose(
        &self,
        request_id: &str,
        index: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let pending = self.pending_for(conn, &header, request_id).await?;
        let index = usize::try_from(index).ok();
        answer(&pending, |w| &mut w.choice, index, "a choice")
    }

    /// Cancels one of the caller's running requests (it ends with `AbortError`).
    async fn cancel(
        &self,
        request_id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let pending = self.pending_for(conn, &header, request_id).await?;
        pending.cancel.cancel();
        Ok(())
    }

    /// User interaction needed by a running request: `kind` is `touch`, `pin`,
    /// `choose-authenticator` or `choose-credential`, `detail_json` its data. Sent only to the
    /// connection that made the request.
    #[zbus(signal)]
    async fn interaction(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        request_id: &str,
        kind: &str,
        detail_json: &str,
    ) -> zbus::Result<()>;
}
