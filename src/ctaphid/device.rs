//! The authenticator side of CTAPHID (CTAP 2.1 §11.2.9): channel allocation, one transaction at
//! a time, reassembly with an inter-packet timeout, and the commands the framing layer answers
//! itself (INIT, PING, WINK, LOCK). CBOR and MSG requests are handed to the application as
//! [`DeviceEvent::Request`] and answered with [`DeviceFraming::respond`].
//!
//! Behaviour, with the error each bad input gets (all sent on the packet's channel):
//!
//! | input | reply |
//! |---|---|
//! | any packet on channel 0 (reserved) | `INVALID_CHANNEL` |
//! | non-INIT command on the broadcast channel, or on a channel never allocated | `INVALID_CHANNEL` |
//! | INIT with a payload other than 8 bytes | `INVALID_LEN` |
//! | INIT on an allocated channel | resync: the channel's transaction is dropped (a pending request is reported as [`DeviceEvent::Cancel`]), INIT echoed with the same channel |
//! | announced length above 7609 | `INVALID_LEN` |
//! | unknown, vendor, KEEPALIVE or ERROR command; MSG when NMSG is set; CBOR without the CBOR capability; WINK without the WINK capability | `INVALID_CMD` |
//! | CBOR with an empty payload, WINK with a payload, LOCK with a payload other than 1 byte | `INVALID_LEN` |
//! | LOCK with more than 10 seconds | `INVALID_PAR` |
//! | a new initialization packet from the channel whose message is still incomplete | `INVALID_SEQ` (message dropped) |
//! | continuation packet with a wrong sequence number | `INVALID_SEQ` (message dropped) |
//! | initialization packet from another channel while a transaction is in progress, or while another channel holds the lock | `CHANNEL_BUSY` |
//! | continuation packet that belongs to no message in progress | ignored (spurious, §11.2.4) |
//! | CANCEL outside a pending request of that channel | ignored (§11.2.9.1.5) |
//! | no packet for `inter_packet_timeout` (500 ms) inside a message | `MSG_TIMEOUT` (message dropped) |
//! | a request while the same channel's earlier request is still being processed | `CHANNEL_BUSY` |
//!
//! `LOCK_REQUIRED` is never sent by this device (it requires no lock); hosts decode it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::packet::{
    CONT_DATA_LEN, Capabilities, ChannelId, CtapHidErrorCode, HidCmd, INIT_DATA_LEN,
    INIT_NONCE_LEN, InitResponse, KeepaliveStatus, MAX_MESSAGE_LEN, PROTOCOL_VERSION, Packet,
    error_report, fragment, keepalive_report, single,
};
use crate::hid::Report;

/// Longest CTAPHID_LOCK, in seconds (§11.2.9.2.2).
pub const MAX_LOCK_SECS: u8 = 10;

/// How the framing layer presents the device.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Capability flags reported by INIT; they also gate WINK, CBOR and MSG.
    pub capabilities: Capabilities,
    /// Major device version number (INIT reply).
    pub major: u8,
    /// Minor device version number (INIT reply).
    pub minor: u8,
    /// Build device version number (INIT reply).
    pub build: u8,
    /// Longest gap between two packets of one message before it is dropped with MSG_TIMEOUT.
    pub inter_packet_timeout: Duration,
    /// How many allocated channels are remembered; the least recently allocated is forgotten
    /// first (a forgotten channel gets INVALID_CHANNEL and must INIT again).
    pub max_channels: usize,
}

impl Default for DeviceConfig {
    /// A CTAP2 device with WINK and CTAP1/U2F, 500 ms inter-packet timeout, 64 channels.
    fn default() -> Self {
        Self {
            capabilities: Capabilities::CBOR | Capabilities::WINK,
            major: 0,
            minor: 1,
            build: 0,
            inter_packet_timeout: Duration::from_millis(500),
            max_channels: 64,
        }
    }
}

/// What the application must do after a [`DeviceFraming::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// Send this report to the host now.
    Send(Report),
    /// A complete CBOR or MSG request to process; answer with [`DeviceFraming::respond`] and
    /// send [`DeviceFraming::keepalive`] at least every 100 ms meanwhile (§11.2.9.1.7).
    Request {
        /// The channel to answer on.
        cid: ChannelId,
        /// [`HidCmd::CBOR`] or [`HidCmd::MSG`].
        cmd: HidCmd,
        /// The reassembled message.
        payload: Vec<u8>,
    },
    /// The host cancelled the pending request on this channel (CTAPHID_CANCEL, or INIT
    /// resynchronisation). For CANCEL, answer the CBOR request with
    /// CTAP2_ERR_KEEPALIVE_CANCEL (§11.2.9.1.5); after a resync the answer is dropped.
    Cancel(ChannelId),
    /// The host asked the device to identify itself (the WINK reply is already queued).
    Wink(ChannelId),
}

/// The one transaction the device handles at a time (§11.2.9: a device serves one channel at
/// a time and answers others with CHANNEL_BUSY).
#[derive(Debug)]
enum Transaction {
    Idle,
    /// Reassembling a message.
    Receiving {
        cid: ChannelId,
        cmd: HidCmd,
        total: usize,
        data: Vec<u8>,
        next_seq: u8,
        last_packet: Instant,
    },
    /// A request was handed to the application and awaits [`DeviceFraming::respond`].
    Processing {
        cid: ChannelId,
    },
}

/// The device side of CTAPHID: feed it output reports, send what it returns.
#[derive(Debug)]
pub struct DeviceFraming {
    config: DeviceConfig,
    /// Allocated channels, least recently allocated first.
    channels: VecDeque<ChannelId>,
    transaction: Transaction,
    /// The channel holding a CTAPHID_LOCK, and until when.
    lock: Option<(ChannelId, Instant)>,
    /// Fallback channel counter when the RNG keeps returning unusable values.
    next_fallback: u32,
}

impl DeviceFraming {
    /// A device with no channels allocated yet.
    pub fn new(config: DeviceConfig) -> Self {
        Self {
            config,
            channels: VecDeque::new(),
            transaction: Transaction::Idle,
            lock: None,
            next_fallback: 1,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// Whether a request has been handed out and not yet answered.
    pub fn is_processing(&self) -> bool {
        matches!(self.transaction, Transaction::Processing { .. })
    }

    /// Feed one output report received from the host at `now`. `rng` supplies channel ids.
    /// Returns reports to send at once and/or application events, in order.
    pub fn push(
        &mut self,
        report: &Report,
        now: Instant,
        rng: &mut dyn FnMut() -> u32,
    ) -> Vec<DeviceEvent> {
        let mut events: Vec<DeviceEvent> = self
            .poll_timeout(now)
            .into_iter()
            .map(DeviceEvent::Send)
            .collect();
        match Packet::parse(report) {
            Packet::Init {
                cid,
                cmd,
                bcnt,
                data,
            } => self.push_init(cid, cmd, usize::from(bcnt), data, now, rng, &mut events),
            Packet::Cont { cid, seq, data } => self.push_cont(cid, seq, data, now, &mut events),
        }
        events
    }

    #[allow(clippy::too_many_arguments)]
    fn push_init(
        &mut self,
        cid: ChannelId,
        cmd: HidCmd,
        bcnt: usize,
        data: &[u8],
        now: Instant,
        rng: &mut dyn FnMut() -> u32,
        events: &mut Vec<DeviceEvent>,
    ) {
        let error = |code| DeviceEvent::Send(error_report(cid, code));
        if cid.0 == 0 {
            events.push(error(CtapHidErrorCode::INVALID_CHANNEL));
            return;
        }
        if cmd == HidCmd::INIT {
            self.init(cid, bcnt, data, rng, events);
            return;
        }
        if cid.is_broadcast() || !self.channels.contains(&cid) {
            events.push(error(CtapHidErrorCode::INVALID_CHANNEL));
            return;
        }
        if let Some((owner, _)) = self.lock
            && owner != cid
        {
            events.push(error(CtapHidErrorCode::CHANNEL_BUSY));
            return;
        }
        match self.transaction {
            Transaction::Idle => {}
            Transaction::Receiving { cid: busy, .. } if busy == cid => {
                self.transaction = Transaction::Idle;
                events.push(error(CtapHidErrorCode::INVALID_SEQ));
                return;
            }
            Transaction::Processing { cid: busy } if busy == cid && cmd == HidCmd::CANCEL => {
                events.push(DeviceEvent::Cancel(cid));
                return;
            }
            _ if cmd == HidCmd::CANCEL => return,
            Transaction::Receiving { .. } | Transaction::Processing { .. } => {
                events.push(error(CtapHidErrorCode::CHANNEL_BUSY));
                return;
            }
        }
        if cmd == HidCmd::CANCEL {
            // Nothing pending on this channel: ignored (§11.2.9.1.5).
            return;
        }
        let caps = self.config.capabilities;
        let known = match cmd {
            HidCmd::PING | HidCmd::LOCK => true,
            HidCmd::MSG => caps.supports_msg(),
            HidCmd::CBOR => caps.contains(Capabilities::CBOR),
            HidCmd::WINK => caps.contains(Capabilities::WINK),
            _ => false,
        };
        if !known {
            events.push(error(CtapHidErrorCode::INVALID_CMD));
            return;
        }
        if bcnt > MAX_MESSAGE_LEN {
            events.push(error(CtapHidErrorCode::INVALID_LEN));
            return;
        }
        let first = data.get(..bcnt.min(INIT_DATA_LEN)).unwrap_or(data);
        if bcnt <= INIT_DATA_LEN {
            self.complete(cid, cmd, first.to_vec(), now, events);
        } else {
            let mut buf = Vec::with_capacity(bcnt);
            buf.extend_from_slice(first);
            self.transaction = Transaction::Receiving {
                cid,
                cmd,
                total: bcnt,
                data: buf,
                next_seq: 0,
                last_packet: now,
            };
        }
    }

    fn init(
        &mut self,
        cid: ChannelId,
        bcnt: usize,
        data: &[u8],
        rng: &mut dyn FnMut() -> u32,
        events: &mut Vec<DeviceEvent>,
    ) {
        if bcnt != INIT_NONCE_LEN {
            events.push(DeviceEvent::Send(error_report(
                cid,
                CtapHidErrorCode::INVALID_LEN,
            )));
            return;
        }
        let mut nonce = [0u8; INIT_NONCE_LEN];
        nonce.copy_from_slice(data.get(..INIT_NONCE_LEN).unwrap_or(&[0; INIT_NONCE_LEN]));
        let assigned = if cid.is_broadcast() {
            self.allocate(rng)
        } else if self.channels.contains(&cid) {
            // Resynchronisation (§11.2.9.1.3): abort whatever the channel was doing.
            match self.transaction {
                Transaction::Receiving { cid: busy, .. } if busy == cid => {
                    self.transaction = Transaction::Idle;
                }
                Transaction::Processing { cid: busy } if busy == cid => {
                    self.transaction = Transaction::Idle;
                    events.push(DeviceEvent::Cancel(cid));
                }
                _ => {}
            }
            if matches!(self.lock, Some((owner, _)) if owner == cid) {
                self.lock = None;
            }
            cid
        } else {
            events.push(DeviceEvent::Send(error_report(
                cid,
                CtapHidErrorCode::INVALID_CHANNEL,
            )));
            return;
        };
        let reply = InitResponse {
            nonce,
            cid: assigned,
            protocol_version: PROTOCOL_VERSION,
            major: self.config.major,
            minor: self.config.minor,
            build: self.config.build,
            capabilities: self.config.capabilities,
        };
        events.push(DeviceEvent::Send(single(
            cid,
            HidCmd::INIT,
            &reply.encode(),
        )));
    }

    fn allocate(&mut self, rng: &mut dyn FnMut() -> u32) -> ChannelId {
        let mut candidate = None;
        for _ in 0..16 {
            let cid = ChannelId(rng());
            if cid.is_allocatable() && !self.channels.contains(&cid) {
                candidate = Some(cid);
                break;
            }
        }
        let cid = match candidate {
            Some(cid) => cid,
            None => loop {
                let cid = ChannelId(self.next_fallback);
                self.next_fallback = self.next_fallback.wrapping_add(1);
                if cid.is_allocatable() && !self.channels.contains(&cid) {
                    break cid;
                }
            },
        };
        while self.channels.len() >= self.config.max_channels.max(1) {
            // Forget the oldest channel that is not in the middle of a transaction.
            let busy = self.transaction_cid();
            match self.channels.iter().position(|c| Some(*c) != busy) {
                Some(index) => {
                    self.channels.remove(index);
                }
                None => break,
            }
        }
        self.channels.push_back(cid);
        cid
    }

    fn transaction_cid(&self) -> Option<ChannelId> {
        match self.transaction {
            Transaction::Idle => None,
            Transaction::Receiving { cid, .. } | Transaction::Processing { cid } => Some(cid),
        }
    }

    fn push_cont(
        &mut self,
        cid: ChannelId,
        seq: u8,
        data: &[u8],
        now: Instant,
        events: &mut Vec<DeviceEvent>,
    ) {
        if cid.0 == 0 {
            events.push(DeviceEvent::Send(error_report(
                cid,
                CtapHidErrorCode::INVALID_CHANNEL,
            )));
            return;
        }
        let Transaction::Receiving {
            cid: busy,
            cmd,
            total,
            data: buf,
            next_seq,
            last_packet,
        } = &mut self.transaction
        else {
            return; // spurious continuation packet: ignored
        };
        if *busy != cid {
            return; // another channel's stray packet: ignored
        }
        if seq != *next_seq {
            self.transaction = Transaction::Idle;
            events.push(DeviceEvent::Send(error_report(
                cid,
                CtapHidErrorCode::INVALID_SEQ,
            )));
            return;
        }
        let take = (*total - buf.len()).min(CONT_DATA_LEN);
        buf.extend_from_slice(data.get(..take).unwrap_or(data));
        *next_seq = next_seq.wrapping_add(1);
        *last_packet = now;
        if buf.len() >= *total {
            let cmd = *cmd;
            let payload = std::mem::take(buf);
            self.transaction = Transaction::Idle;
            self.complete(cid, cmd, payload, now, events);
        }
    }

    /// A whole message arrived on `cid`.
    fn complete(
        &mut self,
        cid: ChannelId,
        cmd: HidCmd,
        payload: Vec<u8>,
        now: Instant,
        events: &mut Vec<DeviceEvent>,
    ) {
        let error = |code| DeviceEvent::Send(error_report(cid, code));
        match cmd {
            HidCmd::PING => match fragment(cid, HidCmd::PING, &payload) {
                Ok(reports) => events.extend(reports.into_iter().map(DeviceEvent::Send)),
                Err(_) => events.push(error(CtapHidErrorCode::INVALID_LEN)),
            },
            HidCmd::WINK if !payload.is_empty() => {
                events.push(error(CtapHidErrorCode::INVALID_LEN))
            }
            HidCmd::WINK => {
                events.push(DeviceEvent::Send(single(cid, HidCmd::WINK, &[])));
                events.push(DeviceEvent::Wink(cid));
            }
            HidCmd::LOCK => match payload.as_slice() {
                [secs] if *secs > MAX_LOCK_SECS => {
                    events.push(error(CtapHidErrorCode::INVALID_PAR))
                }
                [0] => {
                    self.lock = None;
                    events.push(DeviceEvent::Send(single(cid, HidCmd::LOCK, &[])));
                }
                [secs] => {
                    self.lock = Some((cid, now + Duration::from_secs(u64::from(*secs))));
                    events.push(DeviceEvent::Send(single(cid, HidCmd::LOCK, &[])));
                }
                _ => events.push(error(CtapHidErrorCode::INVALID_LEN)),
            },
            HidCmd::CBOR if payload.is_empty() => events.push(error(CtapHidErrorCode::INVALID_LEN)),
            HidCmd::CBOR | HidCmd::MSG => {
                self.transaction = Transaction::Processing { cid };
                events.push(DeviceEvent::Request { cid, cmd, payload });
            }
            _ => events.push(error(CtapHidErrorCode::INVALID_CMD)),
        }
    }

    /// Answer the pending request on `cid` and end its transaction. `cmd` is normally the
    /// request's command (CBOR or MSG) or [`HidCmd::ERROR`]. Returns no reports when `cid` has
    /// no pending request (it was cancelled by an INIT resync): a stale answer is dropped. A
    /// payload above 7609 bytes is replaced by an `OTHER` error.
    pub fn respond(&mut self, cid: ChannelId, cmd: HidCmd, payload: &[u8]) -> Vec<Report> {
        match self.transaction {
            Transaction::Processing { cid: busy } if busy == cid => {}
            _ => return Vec::new(),
        }
        self.transaction = Transaction::Idle;
        fragment(cid, cmd, payload)
            .unwrap_or_else(|_| vec![error_report(cid, CtapHidErrorCode::OTHER)])
    }

    /// A KEEPALIVE report for the pending request on `cid` (§11.2.9.1.7).
    pub fn keepalive(&self, cid: ChannelId, status: KeepaliveStatus) -> Report {
        keepalive_report(cid, status)
    }

    /// Drop a message whose next packet is overdue at `now` (MSG_TIMEOUT to its channel) and
    /// release an expired lock. Call it when [`Self::next_deadline`] passes.
    pub fn poll_timeout(&mut self, now: Instant) -> Vec<Report> {
        if let Some((_, until)) = self.lock
            && now >= until
        {
            self.lock = None;
        }
        if let Transaction::Receiving {
            cid, last_packet, ..
        } = self.transaction
            && now.saturating_duration_since(last_packet) > self.config.inter_packet_timeout
        {
            self.transaction = Transaction::Idle;
            return vec![error_report(cid, CtapHidErrorCode::MSG_TIMEOUT)];
        }
        Vec::new()
    }

    /// When [`Self::poll_timeout`] next has work: the end of the inter-packet gap of the
    /// message being received, or the end of a lock.
    pub fn next_deadline(&self) -> Option<Instant> {
        let message = match self.transaction {
            Transaction::Receiving { last_packet, .. } => {
                Some(last_packet + self.config.inter_packet_timeout + Duration::from_millis(1))
            }
            _ => None,
        };
        let lock = self.lock.map(|(_, until)| until);
        match (message, lock) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Allocated channels (oldest first); for diagnostics and tests.
    pub fn channels(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.channels.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctaphid::host::{HostEvent, ResponseAssembler};
    use crate::ctaphid::packet::testutil::report;

    const NEW_CID: u32 = 0x1122_3344;

    struct Rig {
        dev: DeviceFraming,
        now: Instant,
        next_cid: u32,
    }

    impl Rig {
        fn new(config: DeviceConfig) -> Self {
            Self {
                dev: DeviceFraming::new(config),
                now: Instant::now(),
                next_cid: NEW_CID,
            }
        }
        fn push(&mut self, r: &Report) -> Vec<DeviceEvent> {
            let mut next = self.next_cid;
            let mut rng = move || {
                let v = next;
                next = next.wrapping_add(1);
                v
            };
            let events = self.dev.push(r, self.now, &mut rng);
            self.next_cid = next;
            events
        }
        fn push_hex(&mut self, hex_str: &str) -> Vec<DeviceEvent> {
            self.push(&report(hex_str))
        }
        /// Allocate a channel and return it.
        fn open(&mut self) -> ChannelId {
            let events = self.push_hex("ffffffff 86 0008 0001020304050607");
            let [DeviceEvent::Send(r)] = events.as_slice() else {
                panic!("{events:?}")
            };
            let init = InitResponse::decode(&r[7..24], &[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
            init.cid
        }
    }

    fn sent(hex_str: &str) -> Vec<DeviceEvent> {
        vec![DeviceEvent::Send(report(hex_str))]
    }

    #[test]
    fn golden_init_allocates_a_channel() {
        let mut rig = Rig::new(DeviceConfig {
            major: 1,
            minor: 2,
            build: 3,
            ..DeviceConfig::default()
        });
        assert_eq!(
            rig.push_hex("ffffffff 86 0008 a0a1a2a3a4a5a6a7"),
            sent("ffffffff 86 0011 a0a1a2a3a4a5a6a7 11223344 02 010203 05")
        );
        assert_eq!(
            rig.dev.channels().collect::<Vec<_>>(),
            vec![ChannelId(NEW_CID)]
        );
        // A second INIT gets another channel.
        assert_eq!(
            rig.push_hex("ffffffff 86 0008 b0b1b2b3b4b5b6b7"),
            sent("ffffffff 86 0011 b0b1b2b3b4b5b6b7 11223345 02 010203 05")
        );
    }

    #[test]
    fn rng_values_zero_broadcast_and_duplicates_are_skipped() {
        let mut dev = DeviceFraming::new(DeviceConfig::default());
        let now = Instant::now();
        let mut values = vec![7, 0xffff_ffff, 0, 7].into_iter();
        let mut rng = move || values.next().unwrap_or(9);
        let init = report("ffffffff 86 0008 0000000000000000");
        dev.push(&init, now, &mut rng);
        dev.push(&init, now, &mut rng);
        assert_eq!(
            dev.channels().collect::<Vec<_>>(),
            vec![ChannelId(7), ChannelId(9)]
        );
    }

    #[test]
    fn init_on_allocated_channel_resyncs_and_cancels() {
        let mut rig = Rig::new(DeviceConfig::default());
        let cid = rig.open();
        assert_eq!(cid, ChannelId(NEW_CID));
        let events = rig.push_hex("11223344 90 0001 04");
        assert_eq!(
            events,
            vec![DeviceEvent::Request {
                cid,
                cmd: HidCmd::CBOR,
                payload: vec![4]
            }]
        );
        let events = rig.push_hex("11223344 86 0008 0102030405060708");
        assert_eq!(
            events,
            vec![
                DeviceEvent::Cancel(cid),
                DeviceEvent::Send(report(
                    "11223344 86 0011 0102030405060708 11223344 02 000100 05"
                )),
            ]
        );
        // The stale answer is dropped; the channel is usable again.
        assert!(rig.dev.respond(cid, HidCmd::CBOR, &[0]).is_empty());
        assert_eq!(
            rig.push_hex("11223344 81 0001 aa"),
            sent("11223344 81 0001 aa")
        );
    }

    #[test]
    fn golden_ping_single_and_multi_packet() {
        let mut rig = Rig::new(DeviceConfig::default());
        rig.open();
        assert_eq!(
            rig.push_hex("11223344 81 0002 abcd"),
            sent("11223344 81 0002 abcd")
        );
        let payload: Vec<u8> = (0..100).collect();
        let reports = fragment(ChannelId(NEW_CID), HidCmd::PING, &payload).unwrap();
        assert!(rig.push(&reports[0]).is_empty());
        let events = rig.push(&reports[1]);
        assert_eq!(
            events,
            reports
                .iter()
                .map(|r| DeviceEvent::Send(*r))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn golden_cbor_request_response_and_keepalive() {
        let mut rig = Rig::new(DeviceConfig::default());
        let cid = rig.open();
        assert_eq!(
            rig.push_hex("11223344 90 0001 04"),
            vec![DeviceEvent::Request {
                cid,
                cmd: HidCmd::CBOR,
                payload: vec![0x04]
            }]
        );
        assert!(rig.dev.is_processing());
        assert_eq!(
            rig.dev.keepalive(cid, KeepaliveStatus::PROCESSING),
            report("11223344 bb 0001 01")
        );
        assert_eq!(
            rig.dev.keepalive(cid, KeepaliveStatus::UPNEEDED),
            report("11223344 bb 0001 02")
        );
        assert_eq!(
            rig.dev.respond(cid, HidCmd::CBOR, &[0x00, 0xa0]),
            vec![report("11223344 90 0002 00a0")]
        );
        assert!(!rig.dev.is_processing());
        // A second respond has nothing to answer.
        assert!(rig.dev.respond(cid, HidCmd::CBOR, &[0x00]).is_empty());
    }

    #[test]
    fn golden_msg_request() {
        let mut rig = Rig::new(DeviceConfig::default());
        let cid = rig.open();
        assert_eq!(
            rig.push_hex("11223344 83 0007 00030000000000"),
            vec![DeviceEvent::Request {
                cid,
                cmd: HidCmd::MSG,
                payload: vec![0, 3, 0, 0, 0, 0, 0]
            }]
        );
        assert_eq!(
            rig.dev.respond(cid, HidCmd::MSG, b"U2F_V2\x90\x00"),
            vec![report("11223344 83 0008 5532465f56329000")]
        );
    }

    #[test]
    fn nmsg_means_msg_is_invalid_cmd() {
        let mut rig = Rig::new(DeviceConfig {
            capabilities: Capabilities::CBOR | Capabilities::NMSG,
            ..Default::default()
        });
        rig.open();
        assert_eq!(
            rig.push_hex("11223344 83 0001 00"),
            sent("11223344 bf 0001 01")
        );
    }

    #[test]
    fn golden_cancel() {
        let mut rig = Rig::new(DeviceConfig::default());
        let cid = rig.open();
        // CANCEL with nothing pending: ignored.
        assert!(rig.push_hex("11223344 91 0000").is_empty());
        rig.push_hex("11223344 90 0001 02");
        assert_eq!(
            rig.push_hex("11223344 91 0000"),
            vec![DeviceEvent::Cancel(cid)]
        );
        assert_eq!(
            rig.dev.respond(cid, HidCmd::CBOR, &[0x2d]),
            vec![report("11223344 90 0001 2d")]
        );
    }

    #[test]
    fn golden_wink_and_lock() {
        let mut rig = Rig::new(DeviceConfig::default());
        let cid = rig.open();
        assert_eq!(
            rig.push_hex("11223344 88 0000"),
            vec![
                DeviceEvent::Send(report("11223344 88 0000")),
                DeviceEvent::Wink(cid)
            ]
        );
        assert_eq!(
            rig.push_hex("11223344 88 0001 00"),
            sent("11223344 bf 0001 03")
        );
        assert_eq!(
            rig.push_hex("11223344 84 0001 0b"),
            sent("11223344 bf 0001 02")
        );
        assert_eq!(
            rig.push_hex("11223344 84 0002 0101"),
            sent("11223344 bf 0001 03")
        );
        assert_eq!(
            rig.push_hex("11223344 84 0001 05"),
            sent("11223344 84 0000")
        );
        // Another channel is busy while the lock holds...
        let other = rig.open();
        assert_eq!(other, ChannelId(NEW_CID + 1));
        assert_eq!(
            rig.push_hex("11223345 81 0001 01"),
            sent("11223345 bf 0001 06")
        );
        // ...until it expires.
        rig.now += Duration::from_secs(5);
        assert_eq!(
            rig.push_hex("11223345 81 0001 01"),
            sent("11223345 81 0001 01")
        );
        // Explicit release with LOCK 0.
        assert_eq!(
            rig.push_hex("11223344 84 0001 0a"),
            sent("11223344 84 0000")
        );
        assert_eq!(
            rig.push_hex("11223345 81 0001 01"),
            sent("11223345 bf 0001 06")
        );
        assert_eq!(
            rig.push_hex("11223344 84 0001 00"),
            sent("11223344 84 0000")
        );
        assert_eq!(
            rig.push_hex("11223345 81 0001 01"),
            sent("11223345 81 0001 01")
        );
    }

    #[test]
    fn wink_without_capability_is_invalid_cmd() {
        let mut rig = Rig::new(DeviceConfig {
            capabilities: Capabilities::CBOR,
            ..Default::default()
        });
        rig.open();
        assert_eq!(
            rig.push_hex("11223344 88 0000"),
            sent("11223344 bf 0001 01")
        );
    }

    #[test]
    fn channel_errors() {
        let mut rig = Rig::new(DeviceConfig::default());
        // Channel 0 is reserved.
        assert_eq!(
            rig.push_hex("00000000 86 0008 0001020304050607"),
            sent("00000000 bf 0001 0b")
        );
        // Non-INIT on broadcast.
        assert_eq!(
            rig.push_hex("ffffffff 90 0001 04"),
            sent("ffffffff bf 0001 0b")
        );
        // Never-allocated channel, including INIT on it.
        assert_eq!(
            rig.push_hex("deadbeef 90 0001 04"),
            sent("deadbeef bf 0001 0b")
        );
        assert_eq!(
            rig.push_hex("deadbeef 86 0008 0001020304050607"),
            sent("deadbeef bf 0001 0b")
        );
        // INIT with a wrong length.
        assert_eq!(
            rig.push_hex("ffffffff 86 0007 00010203040506"),
            sent("ffffffff bf 0001 03")
        );
    }

    #[test]
    fn garbage_commands_get_invalid_cmd() {
        let mut rig = Rig::new(DeviceConfig::default());
        rig.open();
        for cmd in ["bb", "bf", "c0", "ff", "80", "a5"] {
            assert_eq!(
                rig.push_hex(&format!("11223344 {cmd} 0001 01")),
                sent("11223344 bf 0001 01"),
                "{cmd}"
            );
        }
        // CBOR with no payload.
        assert_eq!(
            rig.push_hex("11223344 90 0000"),
            sent("11223344 bf 0001 03")
        );
    }

    #[test]
    fn oversized_truncated_and_out_of_sequence() {
        let mut rig = Rig::new(DeviceConfig::default());
        rig.open();
        // Announced length above 7609.
        assert_eq!(
            rig.push_hex("11223344 90 1dba"),
            sent("11223344 bf 0001 03")
        );
        // 7609 exactly is accepted (awaits continuation packets).
        assert!(rig.push_hex("11223344 90 1db9").is_empty());
        // Out of sequence: SEQ 1 where 0 is due.
        assert_eq!(rig.push_hex("11223344 01"), sent("11223344 bf 0001 04"));
        // Truncated: a message cut off by a new init packet on the same channel.
        assert!(rig.push_hex("11223344 90 0050 01").is_empty());
        assert_eq!(
            rig.push_hex("11223344 90 0001 04"),
            sent("11223344 bf 0001 04")
        );
        // Spurious continuation packets are ignored.
        assert!(rig.push_hex("11223344 00 00").is_empty());
        assert!(rig.push_hex("99999999 05 00").is_empty());
        // The channel still works.
        assert_eq!(rig.push_hex("11223344 81 0000"), sent("11223344 81 0000"));
    }

    #[test]
    fn other_channel_gets_channel_busy() {
        let mut rig = Rig::new(DeviceConfig::default());
        let first = rig.open();
        let second = rig.open();
        assert_eq!(second, ChannelId(NEW_CID + 1));
        // While the first channel is mid-message...
        assert!(rig.push_hex("11223344 90 0050 01").is_empty());
        assert_eq!(
            rig.push_hex("11223345 90 0001 04"),
            sent("11223345 bf 0001 06")
        );
        // ...the second channel's continuation packet is ignored, and the first completes.
        assert!(rig.push_hex("11223345 00 00").is_empty());
        let events = rig.push_hex("11223344 00");
        let [DeviceEvent::Request { cid, payload, .. }] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!((*cid, payload.len()), (first, 0x50));
        // While the first channel's request is processed, the second is busy, and CANCEL from
        // it is ignored; INIT on broadcast still works.
        assert_eq!(
            rig.push_hex("11223345 81 0000"),
            sent("11223345 bf 0001 06")
        );
        assert!(rig.push_hex("11223345 91 0000").is_empty());
        assert_eq!(
            rig.push_hex("11223344 90 0001 04"),
            sent("11223344 bf 0001 06")
        );
        assert_eq!(rig.open(), ChannelId(NEW_CID + 2));
        rig.dev.respond(first, HidCmd::CBOR, &[0]);
        assert_eq!(rig.push_hex("11223345 81 0000"), sent("11223345 81 0000"));
    }

    #[test]
    fn stalled_message_times_out_with_injected_clock() {
        let mut rig = Rig::new(DeviceConfig::default());
        rig.open();
        assert!(rig.push_hex("11223344 90 0080 01").is_empty());
        let deadline = rig.dev.next_deadline().unwrap();
        assert!(deadline > rig.now + Duration::from_millis(500));
        // 500 ms exactly is still within the gap.
        rig.now += Duration::from_millis(500);
        assert!(rig.dev.poll_timeout(rig.now).is_empty());
        assert!(rig.push_hex("11223344 00").is_empty());
        rig.now += Duration::from_millis(501);
        assert_eq!(
            rig.dev.poll_timeout(rig.now),
            vec![report("11223344 bf 0001 05")]
        );
        assert_eq!(rig.dev.next_deadline(), None);
        // The late packet is now spurious.
        assert!(rig.push_hex("11223344 01").is_empty());
    }

    #[test]
    fn timeout_is_also_reported_by_push_and_configurable() {
        let mut rig = Rig::new(DeviceConfig {
            inter_packet_timeout: Duration::from_millis(50),
            ..Default::default()
        });
        rig.open();
        assert!(rig.push_hex("11223344 90 0080 01").is_empty());
        rig.now += Duration::from_millis(60);
        // The next packet (another PING) first triggers the timeout of the stalled message.
        assert_eq!(
            rig.push_hex("11223344 81 0000"),
            vec![
                DeviceEvent::Send(report("11223344 bf 0001 05")),
                DeviceEvent::Send(report("11223344 81 0000"))
            ]
        );
    }

    #[test]
    fn channel_table_is_bounded() {
        let mut rig = Rig::new(DeviceConfig {
            max_channels: 2,
            ..Default::default()
        });
        let first = rig.open();
        rig.open();
        rig.open();
        assert_eq!(rig.dev.channels().count(), 2);
        assert_eq!(
            rig.push(&fragment(first, HidCmd::PING, &[]).unwrap()[0]),
            sent("11223344 bf 0001 0b")
        );
    }

    #[test]
    fn host_and_device_sides_agree_on_a_long_message() {
        let mut rig = Rig::new(DeviceConfig::default());
        let cid = rig.open();
        let request: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let mut got = None;
        for r in fragment(cid, HidCmd::CBOR, &request).unwrap() {
            for event in rig.push(&r) {
                got = Some(event);
            }
        }
        assert_eq!(
            got,
            Some(DeviceEvent::Request {
                cid,
                cmd: HidCmd::CBOR,
                payload: request.clone()
            })
        );
        let mut asm = ResponseAssembler::new(cid);
        let mut reply = None;
        for r in rig.dev.respond(cid, HidCmd::CBOR, &request) {
            if let Some(event) = asm.push(&r).unwrap() {
                reply = Some(event);
            }
        }
        assert_eq!(
            reply,
            Some(HostEvent::Response {
                cmd: HidCmd::CBOR,
                payload: request
            })
        );
    }

    #[test]
    fn random_reports_never_panic() {
        use proptest::prelude::*;
        proptest!(|(reports in prop::collection::vec(any::<[u8; 64]>(), 1..40), gaps in prop::collection::vec(0u64..700, 40))| {
            let mut rig = Rig::new(DeviceConfig::default());
            rig.open();
            for (r, gap) in reports.iter().zip(gaps) {
                rig.now += Duration::from_millis(gap);
                let _ = rig.push(r);
            }
        });
    }
}
