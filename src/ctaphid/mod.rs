//! Sans-IO CTAPHID framing (CTAP 2.1 §11.2), both sides. No I/O, no await; time and randomness
//! are injected.
//!
//! Layer rule: depends only on `hid::{Report, REPORT_LEN}` (the report type); may not import
//! `ctap2`, `device`, `authenticator` or anything doing I/O.
//!
//! - [`packet`]: wire codes, initialization and continuation packets, fragmenting (§11.2.4).
//! - [`device`]: the authenticator side: channels, transactions, INIT, PING, WINK, LOCK,
//!   CANCEL, KEEPALIVE, errors and message timeouts (§11.2.9).
//! - [`host`]: the client side: reassembly of responses, INIT nonce check, keepalive and
//!   error decoding.
//!
//! Message layout (§11.2.4): an initialization packet is `CID(4) CMD(1, bit 7 set) BCNTH BCNTL
//! DATA(57)`, a continuation packet is `CID(4) SEQ(1, 0..=0x7f) DATA(59)`; so one message
//! carries at most 57 + 128 × 59 = 7609 bytes.

pub mod device;
pub mod error;
pub mod host;
pub mod packet;

pub use error::FramingError;
pub use packet::{
    BROADCAST, Capabilities, ChannelId, CtapHidErrorCode, HidCmd, INIT_DATA_LEN, INIT_NONCE_LEN,
    InitResponse, KeepaliveStatus, MAX_MESSAGE_LEN, Packet, fragment,
};
