//! CTAP status codes (CTAP 2.1 §8.2 "Status codes"), including the CTAP1 error codes
//! that share the same byte space.

use std::fmt;

/// A CTAP status byte: the first byte of every CTAP2 response.
///
/// An open newtype: unknown bytes (vendor or extension codes) survive a round trip;
/// `Debug` prints the spec name or the hex value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StatusCode(pub u8);

macro_rules! status_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:expr; )*) => {
        impl StatusCode {
            $( $(#[$doc])* pub const $name: Self = Self($value); )*

            /// The spec name of this code, if it is one of the codes of CTAP 2.1 §8.2.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($name)), )*
                    _ => None,
                }
            }

            /// Every named status code, in byte order.
            pub const ALL: &'static [StatusCode] = &[ $( Self($value), )* ];
        }
    };
}

status_codes! {
    /// 0x00 CTAP2_OK / CTAP1_ERR_SUCCESS: indicates a successful response.
    CTAP2_OK = 0x00;
    /// 0x01 The command is not a valid CTAP command.
    CTAP1_ERR_INVALID_COMMAND = 0x01;
    /// 0x02 The command included an invalid parameter.
    CTAP1_ERR_INVALID_PARAMETER = 0x02;
    /// 0x03 Invalid message or item length.
    CTAP1_ERR_INVALID_LENGTH = 0x03;
    /// 0x04 Invalid message sequencing.
    CTAP1_ERR_INVALID_SEQ = 0x04;
    /// 0x05 Message timed out.
    CTAP1_ERR_TIMEOUT = 0x05;
    /// 0x06 Channel busy.
    CTAP1_ERR_CHANNEL_BUSY = 0x06;
    /// 0x0A Command requires channel lock.
    CTAP1_ERR_LOCK_REQUIRED = 0x0A;
    /// 0x0B Command not allowed on this cid.
    CTAP1_ERR_INVALID_CHANNEL = 0x0B;
    /// 0x11 Invalid/unexpected CBOR error (wrong CBOR type for a parameter).
    CTAP2_ERR_CBOR_UNEXPECTED_TYPE = 0x11;
    /// 0x12 Error when parsing CBOR (malformed, trailing bytes, nested too deep).
    CTAP2_ERR_INVALID_CBOR = 0x12;
    /// 0x14 Missing non-optional parameter.
    CTAP2_ERR_MISSING_PARAMETER = 0x14;
    /// 0x15 Limit for number of items exceeded.
    CTAP2_ERR_LIMIT_EXCEEDED = 0x15;
    /// 0x17 Fingerprint database is full.
    CTAP2_ERR_FP_DATABASE_FULL = 0x17;
    /// 0x18 Large blob storage is full (CTAP 2.1 §6.10.3).
    CTAP2_ERR_LARGE_BLOB_STORAGE_FULL = 0x18;
    /// 0x19 Valid credential found in the exclude list.
    CTAP2_ERR_CREDENTIAL_EXCLUDED = 0x19;
    /// 0x21 Processing (lengthy operation is in progress).
    CTAP2_ERR_PROCESSING = 0x21;
    /// 0x22 Credential not valid for the authenticator.
    CTAP2_ERR_INVALID_CREDENTIAL = 0x22;
    /// 0x23 Authentication is waiting for user interaction.
    CTAP2_ERR_USER_ACTION_PENDING = 0x23;
    /// 0x24 Processing, lengthy operation is in progress.
    CTAP2_ERR_OPERATION_PENDING = 0x24;
    /// 0x25 No request is pending.
    CTAP2_ERR_NO_OPERATIONS = 0x25;
    /// 0x26 Authenticator does not support requested algorithm.
    CTAP2_ERR_UNSUPPORTED_ALGORITHM = 0x26;
    /// 0x27 Not authorized for requested operation.
    CTAP2_ERR_OPERATION_DENIED = 0x27;
    /// 0x28 Internal key storage is full.
    CTAP2_ERR_KEY_STORE_FULL = 0x28;
    /// 0x2B Unsupported option.
    CTAP2_ERR_UNSUPPORTED_OPTION = 0x2B;
    /// 0x2C Not a valid option for current operation.
    CTAP2_ERR_INVALID_OPTION = 0x2C;
    /// 0x2D Pending keep alive was cancelled.
    CTAP2_ERR_KEEPALIVE_CANCEL = 0x2D;
    /// 0x2E No valid credentials provided.
    CTAP2_ERR_NO_CREDENTIALS = 0x2E;
    /// 0x2F A user action timeout occurred.
    CTAP2_ERR_USER_ACTION_TIMEOUT = 0x2F;
    /// 0x30 Continuation command, such as authenticatorGetNextAssertion, not allowed.
    CTAP2_ERR_NOT_ALLOWED = 0x30;
    /// 0x31 PIN invalid.
    CTAP2_ERR_PIN_INVALID = 0x31;
    /// 0x32 PIN blocked.
    CTAP2_ERR_PIN_BLOCKED = 0x32;
    /// 0x33 PIN authentication (pinUvAuthParam) verification failed.
    CTAP2_ERR_PIN_AUTH_INVALID = 0x33;
    /// 0x34 PIN authentication using pinUvAuthToken blocked; requires power cycle to reset.
    CTAP2_ERR_PIN_AUTH_BLOCKED = 0x34;
    /// 0x35 No PIN has been set.
    CTAP2_ERR_PIN_NOT_SET = 0x35;
    /// 0x36 A pinUvAuthToken is required for the selected operation (CTAP 2.0: PIN_REQUIRED).
    CTAP2_ERR_PUAT_REQUIRED = 0x36;
    /// 0x37 PIN policy violation.
    CTAP2_ERR_PIN_POLICY_VIOLATION = 0x37;
    /// 0x38 Reserved for future use (CTAP 2.0: PIN_TOKEN_EXPIRED).
    RESERVED_0X38 = 0x38;
    /// 0x39 Authenticator cannot handle this request due to memory constraints.
    CTAP2_ERR_REQUEST_TOO_LARGE = 0x39;
    /// 0x3A The current operation has timed out.
    CTAP2_ERR_ACTION_TIMEOUT = 0x3A;
    /// 0x3B User presence is required for the requested operation.
    CTAP2_ERR_UP_REQUIRED = 0x3B;
    /// 0x3C Built-in user verification is disabled.
    CTAP2_ERR_UV_BLOCKED = 0x3C;
    /// 0x3D A checksum did not match.
    CTAP2_ERR_INTEGRITY_FAILURE = 0x3D;
    /// 0x3E The requested subcommand is either invalid or not implemented.
    CTAP2_ERR_INVALID_SUBCOMMAND = 0x3E;
    /// 0x3F Built-in user verification unsuccessful.
    CTAP2_ERR_UV_INVALID = 0x3F;
    /// 0x40 The permissions parameter contains an unauthorized permission.
    CTAP2_ERR_UNAUTHORIZED_PERMISSION = 0x40;
    /// 0x7F Other unspecified error.
    CTAP1_ERR_OTHER = 0x7F;
    /// 0xDF CTAP 2 spec last error.
    CTAP2_ERR_SPEC_LAST = 0xDF;
    /// 0xE0 Extension specific error (first).
    CTAP2_ERR_EXTENSION_FIRST = 0xE0;
    /// 0xEF Extension specific error (last).
    CTAP2_ERR_EXTENSION_LAST = 0xEF;
    /// 0xF0 Vendor specific error (first).
    CTAP2_ERR_VENDOR_FIRST = 0xF0;
    /// 0xFF Vendor specific error (last).
    CTAP2_ERR_VENDOR_LAST = 0xFF;
}

impl StatusCode {
    /// CTAP1_ERR_SUCCESS is the same byte as [`StatusCode::CTAP2_OK`].
    pub const CTAP1_ERR_SUCCESS: Self = Self(0x00);

    /// True for 0x00.
    pub fn is_ok(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}(0x{:02X})", self.0),
            None => write!(f, "StatusCode(0x{:02X})", self.0),
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<u8> for StatusCode {
    fn from(value: u8) -> Self {
        Self(value)
    }
}

impl From<StatusCode> for u8 {
    fn from(value: StatusCode) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_debug() {
        assert_eq!(
            format!("{:?}", StatusCode(0x11)),
            "CTAP2_ERR_CBOR_UNEXPECTED_TYPE(0x11)"
        );
        assert_eq!(format!("{:?}", StatusCode(0x13)), "StatusCode(0x13)");
        assert_eq!(StatusCode::CTAP2_ERR_UNAUTHORIZED_PERMISSION.0, 0x40);
        assert_eq!(StatusCode::ALL.len(), 52);
        assert!(StatusCode::ALL.windows(2).all(|w| w[0] < w[1]));
    }
}
