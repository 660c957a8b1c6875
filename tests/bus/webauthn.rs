//! Shared helpers of the bus tests that drive the WebAuthn client and the RelyingParty:
//! configurations granting the test's uid the admin and verifier roles, the inner options of a
//! `{"publicKey": ...}` document, and a task answering PIN requests.

use keygate::service::client::{InteractionStream, WebAuthnProxy, error_name};

const ADMIN_VERIFIER: &str = "admin_uids = [0]\nverifier_uids = [0]\nmax_argument_bytes = 65536\n\
[soft_tokens]\nkdf_memory_kib = 64\nkdf_passes = 1\n";

/// Config granting the test's uid the admin and verifier roles (cheap soft-token KDF).
pub fn tokens_config() -> String {
    let uid = nix::unistd::getuid().as_raw();
    ADMIN_VERIFIER.replace("[0]", &format!("[{uid}]"))
}

const RP_CONFIG: &str = "[[relying_party]]\nid = \"example.org\"\nname = \"Example\"\n\
origins = [\"https://example.org\"]\n";

/// [`tokens_config`] plus the relying party `example.org` (origin `https://example.org`).
pub fn webauthn_config() -> String {
    format!("{}{RP_CONFIG}", tokens_config())
}

/// The D-Bus error name of a call expected to fail.
pub fn err_name<T: std::fmt::Debug>(result: zbus::Result<T>) -> String {
    error_name(&result.expect_err("expected an error")).unwrap_or_default()
}

/// The `publicKey` member of an options document (or the document itself).
pub fn inner_options(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    match value.get("publicKey") {
        Some(inner) => inner.to_string(),
        None => value.to_string(),
    }
}

/// Answers PIN requests of `client` with `pin`; counts the interactions seen per kind.
pub fn answer_pins(
    client: WebAuthnProxy<'static>,
    pin: &'static str,
    stream: InteractionStream,
) -> (
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut stream = stream;
        while let Some(signal) = stream.next().await {
            let args = signal.args().unwrap();
            log.lock().unwrap().push(args.kind.clone());
            if args.kind == "pin" {
                client.provide_pin(&args.request_id, pin).await.unwrap();
            }
        }
    });
    (task, seen)
}
