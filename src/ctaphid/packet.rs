//! CTAPHID wire codes and packets (CTAP 2.1 §11.2.4, §11.2.9).

use std::fmt;

use super::error::FramingError;
use crate::hid::{REPORT_LEN, Report};

/// Payload bytes in an initialization packet (64 − CID 4 − CMD 1 − BCNT 2).
pub const INIT_DATA_LEN: usize = REPORT_LEN - 7;
/// Payload bytes in a continuation packet (64 − CID 4 − SEQ 1).
pub const CONT_DATA_LEN: usize = REPORT_LEN - 5;
/// Highest continuation sequence number (§11.2.4: SEQ is 0..=0x7f).
pub const MAX_SEQ: u8 = 0x7f;
/// Largest message: 57 + 128 × 59 = 7609 bytes (§11.2.4).
pub const MAX_MESSAGE_LEN: usize = INIT_DATA_LEN + (MAX_SEQ as usize + 1) * CONT_DATA_LEN;
/// Length of the CTAPHID_INIT nonce (§11.2.9.1.3).
pub const INIT_NONCE_LEN: usize = 8;
/// Length of the CTAPHID_INIT reply payload (§11.2.9.1.3).
pub const INIT_RESPONSE_LEN: usize = 17;
/// The broadcast channel (§11.2.3), used only for CTAPHID_INIT.
pub const BROADCAST: ChannelId = ChannelId(0xffff_ffff);
/// The CTAPHID protocol version this implementation speaks (§11.2.9.1.3).
pub const PROTOCOL_VERSION: u8 = 2;

/// Defines an open newtype over a wire byte whose `Debug` prints the spec name or hex
/// (STYLE.md §3): unknown codes survive a round trip.
macro_rules! wire_code {
    ($(#[$meta:meta])* $name:ident { $($(#[$cmeta:meta])* $konst:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            $($(#[$cmeta])* pub const $konst: Self = Self($value);)*

            /// The spec name of this code, if it is one the spec defines.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(v if v == $value => Some(stringify!($konst)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}", name),
                    None => write!(f, "{}(0x{:02x})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

wire_code! {
    /// A CTAPHID command byte, with bit 7 set as it appears on the wire (§11.2.9).
    HidCmd {
        /// Echo the payload (§11.2.9.1.4).
        PING = 0x81,
        /// A CTAP1/U2F APDU (§11.2.9.1.1).
        MSG = 0x83,
        /// Lock the channel for 0..=10 s (§11.2.9.2.2).
        LOCK = 0x84,
        /// Allocate a channel or resynchronise (§11.2.9.1.3).
        INIT = 0x86,
        /// Identify the device visually (§11.2.9.2.1).
        WINK = 0x88,
        /// A CTAP2 CBOR request (§11.2.9.1.2).
        CBOR = 0x90,
        /// Cancel the outstanding request on the channel (§11.2.9.1.5).
        CANCEL = 0x91,
        /// Sent by the device while it processes a request (§11.2.9.1.7).
        KEEPALIVE = 0xbb,
        /// An error reply (§11.2.9.1.6).
        ERROR = 0xbf,
    }
}

impl HidCmd {
    /// First vendor-specific command (§11.2.9.3: 0xc0..=0xff).
    pub const VENDOR_FIRST: Self = Self(0xc0);
}

wire_code! {
    /// A CTAPHID_ERROR code (§11.2.9.1.6).
    CtapHidErrorCode {
        /// The command in the request is invalid.
        INVALID_CMD = 0x01,
        /// A parameter in the request is invalid.
        INVALID_PAR = 0x02,
        /// The length field (BCNT) is invalid for the request.
        INVALID_LEN = 0x03,
        /// The sequence does not match the expected value.
        INVALID_SEQ = 0x04,
        /// The message has timed out.
        MSG_TIMEOUT = 0x05,
        /// The device is busy for the requesting channel.
        CHANNEL_BUSY = 0x06,
        /// The command requires channel lock.
        LOCK_REQUIRED = 0x0a,
        /// The channel identifier is not valid.
        INVALID_CHANNEL = 0x0b,
        /// Unspecified error.
        OTHER = 0x7f,
    }
}

wire_code! {
    /// A CTAPHID_KEEPALIVE status byte (§11.2.9.1.7).
    KeepaliveStatus {
        /// The authenticator is still processing the current request.
        PROCESSING = 0x01,
        /// The authenticator is waiting for user presence.
        UPNEEDED = 0x02,
    }
}

/// CTAPHID_INIT capability flags (§11.2.9.1.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u8);

impl Capabilities {
    /// The device implements CTAPHID_WINK.
    pub const WINK: Self = Self(0x01);
    /// The device implements CTAPHID_CBOR (CTAP2).
    pub const CBOR: Self = Self(0x04);
    /// The device does **not** implement CTAPHID_MSG (no CTAP1/U2F).
    pub const NMSG: Self = Self(0x08);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether CTAPHID_MSG (CTAP1/U2F) is available: NMSG is clear.
    pub fn supports_msg(self) -> bool {
        !self.contains(Self::NMSG)
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        for (flag, name) in [
            (Self::WINK, "WINK"),
            (Self::CBOR, "CBOR"),
            (Self::NMSG, "NMSG"),
        ] {
            if self.contains(flag) {
                names.push(name);
            }
        }
        let rest = self.0 & !(0x01 | 0x04 | 0x08);
        if rest != 0 {
            return write!(f, "Capabilities({} | 0x{:02x})", names.join(" | "), rest);
        }
        write!(f, "Capabilities({})", names.join(" | "))
    }
}

/// A CTAPHID channel identifier (§11.2.3), big-endian on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u32);

impl ChannelId {
    /// Whether this is the broadcast channel 0xffffffff.
    pub fn is_broadcast(self) -> bool {
        self == BROADCAST
    }

    /// Whether the channel can be allocated to a client (neither 0, which is reserved, nor
    /// broadcast).
    pub fn is_allocatable(self) -> bool {
        self.0 != 0 && !self.is_broadcast()
    }

    /// Big-endian wire bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId(0x{:08x})", self.0)
    }
}

/// One parsed CTAPHID packet. Every 64-byte report is syntactically a packet: bit 7 of byte 4
/// tells an initialization packet from a continuation packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// An initialization packet (§11.2.4).
    Init {
        /// Channel.
        cid: ChannelId,
        /// Command (bit 7 set).
        cmd: HidCmd,
        /// The announced length of the whole message (BCNT).
        bcnt: u16,
        /// The 57 data bytes of this packet (including padding).
        data: &'a [u8],
    },
    /// A continuation packet (§11.2.4).
    Cont {
        /// Channel.
        cid: ChannelId,
        /// Sequence number 0..=0x7f.
        seq: u8,
        /// The 59 data bytes of this packet (including padding).
        data: &'a [u8],
    },
}

impl<'a> Packet<'a> {
    /// Parse a report. Never fails: semantic checks belong to the two sides.
    pub fn parse(report: &'a Report) -> Self {
        let (head, rest) = report.split_at(4);
        let cid = ChannelId(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let (&byte4, rest) = match rest.split_first() {
            Some(split) => split,
            None => (&0, rest),
        };
        if byte4 & 0x80 != 0 {
            let (bcnt, data) = rest.split_at(2);
            Packet::Init {
                cid,
                cmd: HidCmd(byte4),
                bcnt: u16::from_be_bytes([bcnt[0], bcnt[1]]),
                data,
            }
        } else {
            Packet::Cont {
                cid,
                seq: byte4,
                data: rest,
            }
        }
    }

    /// The channel of the packet.
    pub fn cid(&self) -> ChannelId {
        match self {
            Packet::Init { cid, .. } | Packet::Cont { cid, .. } => *cid,
        }
    }
}

/// Split a message into reports (§11.2.4): one initialization packet and as many continuation
/// packets as needed, zero padded.
pub fn fragment(cid: ChannelId, cmd: HidCmd, payload: &[u8]) -> Result<Vec<Report>, FramingError> {
    if payload.len() > MAX_MESSAGE_LEN {
        return Err(FramingError::MessageTooLong(payload.len()));
    }
    let bcnt =
        u16::try_from(payload.len()).map_err(|_| FramingError::MessageTooLong(payload.len()))?;
    let first_len = payload.len().min(INIT_DATA_LEN);
    let (first, rest) = payload.split_at(first_len);
    let mut reports = Vec::with_capacity(1 + rest.len().div_ceil(CONT_DATA_LEN));
    let mut report = [0u8; REPORT_LEN];
    report[..4].copy_from_slice(&cid.to_bytes());
    report[4] = cmd.0 | 0x80;
    report[5..7].copy_from_slice(&bcnt.to_be_bytes());
    report[7..7 + first_len].copy_from_slice(first);
    reports.push(report);
    for (seq, chunk) in (0u8..=MAX_SEQ).zip(rest.chunks(CONT_DATA_LEN)) {
        let mut report = [0u8; REPORT_LEN];
        report[..4].copy_from_slice(&cid.to_bytes());
        report[4] = seq;
        report[5..5 + chunk.len()].copy_from_slice(chunk);
        reports.push(report);
    }
    Ok(reports)
}

/// A single-packet message (payload ≤ 57 bytes, so it cannot fail).
pub(crate) fn single(cid: ChannelId, cmd: HidCmd, payload: &[u8]) -> Report {
    let len = payload.len().min(INIT_DATA_LEN);
    let mut report = [0u8; REPORT_LEN];
    report[..4].copy_from_slice(&cid.to_bytes());
    report[4] = cmd.0 | 0x80;
    report[5..7].copy_from_slice(&(len as u16).to_be_bytes());
    report[7..7 + len].copy_from_slice(&payload[..len]);
    report
}

/// A CTAPHID_ERROR report (§11.2.9.1.6).
pub fn error_report(cid: ChannelId, code: CtapHidErrorCode) -> Report {
    single(cid, HidCmd::ERROR, &[code.0])
}

/// A CTAPHID_KEEPALIVE report (§11.2.9.1.7).
pub fn keepalive_report(cid: ChannelId, status: KeepaliveStatus) -> Report {
    single(cid, HidCmd::KEEPALIVE, &[status.0])
}

/// A CTAPHID_INIT request on the broadcast channel (or on `cid` to resynchronise).
pub fn init_request(cid: ChannelId, nonce: &[u8; INIT_NONCE_LEN]) -> Report {
    single(cid, HidCmd::INIT, nonce)
}

/// A CTAPHID_CANCEL request (§11.2.9.1.5): no payload, no reply.
pub fn cancel_request(cid: ChannelId) -> Report {
    single(cid, HidCmd::CANCEL, &[])
}

/// The CTAPHID_INIT reply payload (§11.2.9.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitResponse {
    /// The nonce of the request.
    pub nonce: [u8; INIT_NONCE_LEN],
    /// The channel allocated (or the resynchronised channel).
    pub cid: ChannelId,
    /// CTAPHID protocol version (2).
    pub protocol_version: u8,
    /// Major device version number.
    pub major: u8,
    /// Minor device version number.
    pub minor: u8,
    /// Build device version number.
    pub build: u8,
    /// Capability flags.
    pub capabilities: Capabilities,
}

impl InitResponse {
    /// The 17-byte payload.
    pub fn encode(&self) -> [u8; INIT_RESPONSE_LEN] {
        let mut out = [0u8; INIT_RESPONSE_LEN];
        out[..8].copy_from_slice(&self.nonce);
        out[8..12].copy_from_slice(&self.cid.to_bytes());
        out[12] = self.protocol_version;
        out[13] = self.major;
        out[14] = self.minor;
        out[15] = self.build;
        out[16] = self.capabilities.0;
        out
    }

    /// Decode a reply payload and check it answers `nonce`. Bytes after the 17th are ignored
    /// (later protocol revisions may append fields).
    pub fn decode(payload: &[u8], nonce: &[u8; INIT_NONCE_LEN]) -> Result<Self, FramingError> {
        let fixed: &[u8; INIT_RESPONSE_LEN] = payload
            .get(..INIT_RESPONSE_LEN)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(FramingError::BadLength {
                cmd: HidCmd::INIT,
                len: payload.len(),
            })?;
        let mut got_nonce = [0u8; INIT_NONCE_LEN];
        got_nonce.copy_from_slice(&fixed[..8]);
        if &got_nonce != nonce {
            return Err(FramingError::NonceMismatch);
        }
        let cid = ChannelId(u32::from_be_bytes([
            fixed[8], fixed[9], fixed[10], fixed[11],
        ]));
        if !cid.is_allocatable() {
            return Err(FramingError::BadChannel(cid));
        }
        Ok(Self {
            nonce: got_nonce,
            cid,
            protocol_version: fixed[12],
            major: fixed[13],
            minor: fixed[14],
            build: fixed[15],
            capabilities: Capabilities(fixed[16]),
        })
    }
}

/// Test helpers shared by the framing tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::hid::{REPORT_LEN, Report};

    /// A report from hex (spaces allowed), zero padded to 64 bytes.
    pub(crate) fn report(hex_str: &str) -> Report {
        let clean: String = hex_str.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = hex::decode(clean).unwrap();
        assert!(bytes.len() <= REPORT_LEN);
        let mut out = [0u8; REPORT_LEN];
        out[..bytes.len()].copy_from_slice(&bytes);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::report;
    use super::*;

    #[test]
    fn max_message_len_is_7609() {
        assert_eq!(MAX_MESSAGE_LEN, 7609);
    }

    #[test]
    fn wire_codes_debug_names_and_unknown_hex() {
        assert_eq!(format!("{:?}", HidCmd::CBOR), "CBOR");
        assert_eq!(format!("{:?}", HidCmd(0xc3)), "HidCmd(0xc3)");
        assert_eq!(
            format!("{:?}", CtapHidErrorCode::CHANNEL_BUSY),
            "CHANNEL_BUSY"
        );
        assert_eq!(
            format!("{:?}", CtapHidErrorCode(0x42)),
            "CtapHidErrorCode(0x42)"
        );
        assert_eq!(format!("{:?}", KeepaliveStatus::UPNEEDED), "UPNEEDED");
        assert_eq!(
            format!("{:?}", Capabilities(0x0d)),
            "Capabilities(WINK | CBOR | NMSG)"
        );
        let codes = [
            (CtapHidErrorCode::INVALID_CMD, 0x01),
            (CtapHidErrorCode::INVALID_PAR, 0x02),
            (CtapHidErrorCode::INVALID_LEN, 0x03),
            (CtapHidErrorCode::INVALID_SEQ, 0x04),
            (CtapHidErrorCode::MSG_TIMEOUT, 0x05),
            (CtapHidErrorCode::CHANNEL_BUSY, 0x06),
            (CtapHidErrorCode::LOCK_REQUIRED, 0x0a),
            (CtapHidErrorCode::INVALID_CHANNEL, 0x0b),
            (CtapHidErrorCode::OTHER, 0x7f),
        ];
        for (code, byte) in codes {
            assert_eq!(code.0, byte);
        }
        let cmds = [
            (HidCmd::PING, 0x81),
            (HidCmd::MSG, 0x83),
            (HidCmd::LOCK, 0x84),
            (HidCmd::INIT, 0x86),
            (HidCmd::WINK, 0x88),
            (HidCmd::CBOR, 0x90),
            (HidCmd::CANCEL, 0x91),
            (HidCmd::KEEPALIVE, 0xbb),
            (HidCmd::ERROR, 0xbf),
        ];
        for (cmd, byte) in cmds {
            assert_eq!(cmd.0, byte);
        }
        assert!(!Capabilities::NMSG.supports_msg());
        assert!(Capabilities::CBOR.supports_msg());
    }

    #[test]
    fn golden_single_packet_requests() {
        let cid = ChannelId(0x1122_3344);
        let nonce = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7];
        assert_eq!(
            init_request(BROADCAST, &nonce),
            report("ffffffff 86 0008 a0a1a2a3a4a5a6a7")
        );
        assert_eq!(cancel_request(cid), report("11223344 91 0000"));
        assert_eq!(
            error_report(cid, CtapHidErrorCode::CHANNEL_BUSY),
            report("11223344 bf 0001 06")
        );
        assert_eq!(
            keepalive_report(cid, KeepaliveStatus::UPNEEDED),
            report("11223344 bb 0001 02")
        );
        assert_eq!(
            fragment(cid, HidCmd::CBOR, &[0x04]).unwrap(),
            vec![report("11223344 90 0001 04")]
        );
        assert_eq!(
            fragment(cid, HidCmd::WINK, &[]).unwrap(),
            vec![report("11223344 88 0000")]
        );
        assert_eq!(
            fragment(cid, HidCmd::LOCK, &[5]).unwrap(),
            vec![report("11223344 84 0001 05")]
        );
        // U2F VERSION APDU over MSG.
        assert_eq!(
            fragment(cid, HidCmd::MSG, &[0, 3, 0, 0, 0, 0, 0]).unwrap(),
            vec![report("11223344 83 0007 00030000000000")]
        );
    }

    #[test]
    fn golden_fragmentation_boundaries() {
        let cid = ChannelId(0x0102_0304);
        // 57 bytes fill the initialization packet exactly.
        let payload: Vec<u8> = (0..57).collect();
        let reports = fragment(cid, HidCmd::PING, &payload).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(&reports[0][..7], &[1, 2, 3, 4, 0x81, 0x00, 0x39]);
        assert_eq!(&reports[0][7..], &payload[..]);
        // 58 bytes: one continuation packet with SEQ 0 holding one byte, zero padded.
        let payload: Vec<u8> = (0..58).collect();
        let reports = fragment(cid, HidCmd::PING, &payload).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[1], report("01020304 00 39"));
        // The maximum: 1 + 128 packets, the last one SEQ 0x7f.
        let payload = vec![0x5a; MAX_MESSAGE_LEN];
        let reports = fragment(cid, HidCmd::CBOR, &payload).unwrap();
        assert_eq!(reports.len(), 129);
        assert_eq!(&reports[0][4..7], &[0x90, 0x1d, 0xb9]);
        assert_eq!(reports[128][4], 0x7f);
        assert!(reports[128][5..].iter().all(|b| *b == 0x5a));
        // One byte more is refused.
        assert_eq!(
            fragment(cid, HidCmd::CBOR, &vec![0; MAX_MESSAGE_LEN + 1]),
            Err(FramingError::MessageTooLong(7610))
        );
    }

    #[test]
    fn parse_tells_init_from_continuation() {
        let init = report("cafebabe 90 0102 ff");
        assert_eq!(
            Packet::parse(&init),
            Packet::Init {
                cid: ChannelId(0xcafe_babe),
                cmd: HidCmd::CBOR,
                bcnt: 0x102,
                data: &init[7..]
            }
        );
        let cont = report("cafebabe 7f 01");
        assert_eq!(
            Packet::parse(&cont),
            Packet::Cont {
                cid: ChannelId(0xcafe_babe),
                seq: 0x7f,
                data: &cont[5..]
            }
        );
    }

    #[test]
    fn init_response_golden_and_checks() {
        let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
        let reply = InitResponse {
            nonce,
            cid: ChannelId(0x1122_3344),
            protocol_version: 2,
            major: 5,
            minor: 4,
            build: 3,
            capabilities: Capabilities::CBOR | Capabilities::WINK,
        };
        let bytes = reply.encode();
        assert_eq!(hex::encode(bytes), "0102030405060708112233440205040305");
        assert_eq!(InitResponse::decode(&bytes, &nonce), Ok(reply));
        // Extra trailing bytes are tolerated.
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(InitResponse::decode(&longer, &nonce), Ok(reply));
        assert_eq!(
            InitResponse::decode(&bytes, &[0; 8]),
            Err(FramingError::NonceMismatch)
        );
        assert_eq!(
            InitResponse::decode(&bytes[..16], &nonce),
            Err(FramingError::BadLength {
                cmd: HidCmd::INIT,
                len: 16
            })
        );
        let mut broadcast = bytes;
        broadcast[8..12].copy_from_slice(&[0xff; 4]);
        assert_eq!(
            InitResponse::decode(&broadcast, &nonce),
            Err(FramingError::BadChannel(BROADCAST))
        );
    }
}
