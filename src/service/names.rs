//! Names that other programs rely on (DESIGN.md "Names").

/// Well-known bus name.
pub const BUS_NAME: &str = "org.keygate.Keygate1";
/// Root object (Manager, Tokens, RelyingParty, WebAuthn, Virtual).
pub const ROOT_PATH: &str = "/org/keygate/Keygate1";
/// Parent of device objects.
pub const DEVICES_PATH: &str = "/org/keygate/Keygate1/devices";
/// Manager interface.
pub const MANAGER_IFACE: &str = "org.keygate.Keygate1.Manager";
/// Device interface.
pub const DEVICE_IFACE: &str = "org.keygate.Keygate1.Device";
/// WebAuthn client interface.
pub const WEBAUTHN_IFACE: &str = "org.keygate.Keygate1.WebAuthn";
/// RelyingParty interface.
pub const RELYING_PARTY_IFACE: &str = "org.keygate.Keygate1.RelyingParty";
/// Tokens interface.
pub const TOKENS_IFACE: &str = "org.keygate.Keygate1.Tokens";
/// Virtual (software keys) interface.
pub const VIRTUAL_IFACE: &str = "org.keygate.Keygate1.Virtual";
/// Error name prefix.
pub const ERROR_PREFIX: &str = "org.keygate.Keygate1.Error";
