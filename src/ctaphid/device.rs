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
