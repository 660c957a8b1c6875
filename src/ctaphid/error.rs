//! Errors of the CTAPHID framing layer.

use super::packet::{ChannelId, CtapHidErrorCode, HidCmd};

/// A CTAPHID framing error (host side, or a device-side framing call given bad arguments).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A message longer than 7609 bytes (§11.2.4) was to be sent or was announced.
    #[error("message of {0} bytes exceeds the CTAPHID maximum of 7609")]
    MessageTooLong(usize),
    /// A continuation packet arrived with the wrong sequence number.
    #[error("continuation packet out of sequence: expected {expected}, got {got}")]
    OutOfSequence {
        /// The sequence number that was due.
        expected: u8,
        /// The sequence number received.
        got: u8,
    },
    /// A continuation packet arrived without a message in progress.
    #[error("continuation packet without an initialization packet")]
    UnexpectedContinuation,
    /// An initialization packet arrived while a message was still incomplete.
    #[error("initialization packet {0:?} while a message was incomplete")]
    UnexpectedInit(HidCmd),
    /// A reply payload has the wrong length for its command.
    #[error("{cmd:?} reply of {len} bytes is malformed")]
    BadLength {
        /// The command of the reply.
        cmd: HidCmd,
        /// Its payload length.
        len: usize,
    },
    /// The INIT reply carried another nonce (it answers another client's INIT).
    #[error("INIT reply nonce does not match")]
    NonceMismatch,
    /// The INIT reply allocated an unusable channel (0 or broadcast).
    #[error("INIT reply allocated unusable channel {0:?}")]
    BadChannel(ChannelId),
    /// The device answered with CTAPHID_ERROR.
    #[error("device returned CTAPHID error {0:?}")]
    Device(CtapHidErrorCode),
    /// The device answered with an unexpected command.
    #[error("unexpected reply command {0:?}")]
    UnexpectedCommand(HidCmd),
}
