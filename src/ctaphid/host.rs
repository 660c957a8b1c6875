//! The client side of CTAPHID (CTAP 2.1 §11.2): fragment requests with
//! [`fragment`](super::fragment), reassemble replies with [`ResponseAssembler`], decode
//! KEEPALIVE and ERROR, and check the INIT nonce with
//! [`InitResponse::decode`](super::InitResponse::decode).

use super::error::FramingError;
use super::packet::{
    CONT_DATA_LEN, ChannelId, CtapHidErrorCode, HidCmd, INIT_DATA_LEN, KeepaliveStatus,
    MAX_MESSAGE_LEN, Packet,
};
use crate::hid::Report;

/// What one input report amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// The device is still working (§11.2.9.1.7); keep waiting.
    Keepalive(KeepaliveStatus),
    /// A complete reply.
    Response {
        /// Its command (the request's command, e.g. CBOR, MSG, PING, INIT).
        cmd: HidCmd,
        /// The reassembled payload.
        payload: Vec<u8>,
    },
}

#[derive(Debug)]
struct Partial {
    cmd: HidCmd,
    total: usize,
    data: Vec<u8>,
    next_seq: u8,
}

/// Reassembles the replies of one channel from input reports.
///
/// Reports for other channels are skipped (`Ok(None)`), so several clients may share a
/// device. CTAPHID_ERROR becomes [`FramingError::Device`].
#[derive(Debug)]
pub struct ResponseAssembler {
    cid: ChannelId,
    partial: Option<Partial>,
}

impl ResponseAssembler {
    /// Reassemble replies addressed to `cid`.
    pub fn new(cid: ChannelId) -> Self {
        Self { cid, partial: None }
    }

    /// The channel being listened to.
    pub fn cid(&self) -> ChannelId {
        self.cid
    }

    /// Forget a partly received reply (after a timeout or a cancel).
    pub fn reset(&mut self) {
        self.partial = None;
    }

    /// Feed one input report. `Ok(None)`: not for us, or more packets are needed.
    pub fn push(&mut self, report: &Report) -> Result<Option<HostEvent>, FramingError> {
        let packet = Packet::parse(report);
        if packet.cid() != self.cid {
            return Ok(None);
        }
        match packet {
            Packet::Init {
                cmd, bcnt, data, ..
            } => {
                if self.partial.is_some() {
                    self.partial = None;
                    return Err(FramingError::UnexpectedInit(cmd));
                }
                let bcnt = usize::from(bcnt);
                if bcnt > MAX_MESSAGE_LEN {
                    return Err(FramingError::MessageTooLong(bcnt));
                }
                match cmd {
                    HidCmd::KEEPALIVE => match (bcnt, data.first()) {
                        (1, Some(&status)) => {
                            Ok(Some(HostEvent::Keepalive(KeepaliveStatus(status))))
                        }
                        _ => Err(FramingError::BadLength { cmd, len: bcnt }),
                    },
                    HidCmd::ERROR => match (bcnt, data.first()) {
                        (1, Some(&code)) => Err(FramingError::Device(CtapHidErrorCode(code))),
                        _ => Err(FramingError::BadLength { cmd, len: bcnt }),
                    },
                    _ if bcnt <= INIT_DATA_LEN => Ok(Some(HostEvent::Response {
                        cmd,
                        payload: data.get(..bcnt).unwrap_or(data).to_vec(),
                    })),
                    _ => {
                        let mut buf = Vec::with_capacity(bcnt);
                        buf.extend_from_slice(data);
                        self.partial = Some(Partial {
                            cmd,
                            total: bcnt,
                            data: buf,
                            next_seq: 0,
                        });
                        Ok(None)
                    }
                }
            }
            Packet::Cont { seq, data, .. } => {
                let Some(partial) = self.partial.as_mut() else {
                    return Err(FramingError::UnexpectedContinuation);
                };
                if seq != partial.next_seq {
                    let expected = partial.next_seq;
                    self.partial = None;
                    return Err(FramingError::OutOfSequence { expected, got: seq });
                }
                let take = (partial.total - partial.data.len()).min(CONT_DATA_LEN);
                partial
                    .data
                    .extend_from_slice(data.get(..take).unwrap_or(data));
                partial.next_seq = partial.next_seq.wrapping_add(1);
                if partial.data.len() < partial.total {
                    return Ok(None);
                }
                let done = self.partial.take();
                Ok(done.map(|p| HostEvent::Response {
                    cmd: p.cmd,
                    payload: p.data,
                }))
            }
        }
    }
}
