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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctaphid::packet::testutil::report;
    use crate::ctaphid::{BROADCAST, fragment};
    use proptest::prelude::*;

    const CID: ChannelId = ChannelId(0x1122_3344);

    #[test]
    fn golden_replies_decode() {
        let mut asm = ResponseAssembler::new(CID);
        assert_eq!(
            asm.push(&report("11223344 bb 0001 01")),
            Ok(Some(HostEvent::Keepalive(KeepaliveStatus::PROCESSING)))
        );
        assert_eq!(
            asm.push(&report("11223344 bb 0001 02")),
            Ok(Some(HostEvent::Keepalive(KeepaliveStatus::UPNEEDED)))
        );
        for code in [0x01u8, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0a, 0x0b, 0x7f] {
            let err = asm.push(&report(&format!("11223344 bf 0001 {code:02x}")));
            assert_eq!(err, Err(FramingError::Device(CtapHidErrorCode(code))));
        }
        assert_eq!(
            asm.push(&report("11223344 90 0003 00a101")),
            Ok(Some(HostEvent::Response {
                cmd: HidCmd::CBOR,
                payload: vec![0x00, 0xa1, 0x01]
            }))
        );
        assert_eq!(
            asm.push(&report("11223344 88 0000")),
            Ok(Some(HostEvent::Response {
                cmd: HidCmd::WINK,
                payload: vec![]
            }))
        );
        assert_eq!(
            asm.push(&report("11223344 83 0002 9000")),
            Ok(Some(HostEvent::Response {
                cmd: HidCmd::MSG,
                payload: vec![0x90, 0x00]
            }))
        );
    }

    #[test]
    fn init_reply_on_broadcast() {
        let mut asm = ResponseAssembler::new(BROADCAST);
        let event = asm
            .push(&report(
                "ffffffff 86 0011 a0a1a2a3a4a5a6a7 cafe0001 02 010203 0d",
            ))
            .unwrap()
            .unwrap();
        let HostEvent::Response {
            cmd: HidCmd::INIT,
            payload,
        } = event
        else {
            panic!("{event:?}")
        };
        let init = crate::ctaphid::InitResponse::decode(
            &payload,
            &[0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7],
        )
        .unwrap();
        assert_eq!(init.cid, ChannelId(0xcafe_0001));
        assert!(!init.capabilities.supports_msg());
    }

    #[test]
    fn other_channels_are_skipped() {
        let mut asm = ResponseAssembler::new(CID);
        assert_eq!(asm.push(&report("99999999 90 0001 00")), Ok(None));
        assert_eq!(asm.push(&report("99999999 00 00")), Ok(None));
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let mut asm = ResponseAssembler::new(CID);
        // Continuation without a message.
        assert_eq!(
            asm.push(&report("11223344 00")),
            Err(FramingError::UnexpectedContinuation)
        );
        // Out of sequence.
        assert_eq!(asm.push(&report("11223344 90 0040")), Ok(None));
        assert_eq!(
            asm.push(&report("11223344 01")),
            Err(FramingError::OutOfSequence {
                expected: 0,
                got: 1
            })
        );
        // A new init packet interrupting a message.
        assert_eq!(asm.push(&report("11223344 90 0040")), Ok(None));
        assert_eq!(
            asm.push(&report("11223344 90 0001 00")),
            Err(FramingError::UnexpectedInit(HidCmd::CBOR))
        );
        // Oversized announcement.
        assert_eq!(
            asm.push(&report("11223344 90 1dba")),
            Err(FramingError::MessageTooLong(7610))
        );
        // Malformed keepalive / error lengths.
        assert_eq!(
            asm.push(&report("11223344 bb 0000")),
            Err(FramingError::BadLength {
                cmd: HidCmd::KEEPALIVE,
                len: 0
            })
        );
        assert_eq!(
            asm.push(&report("11223344 bf 0002 0101")),
            Err(FramingError::BadLength {
                cmd: HidCmd::ERROR,
                len: 2
            })
        );
        // After errors the assembler works again.
        assert_eq!(
            asm.push(&report("11223344 81 0001 55")),
            Ok(Some(HostEvent::Response {
                cmd: HidCmd::PING,
                payload: vec![0x55]
            }))
        );
    }

    proptest! {
        #[test]
        fn fragment_reassemble_round_trip(
            cid in 1u32..0xffff_ffff,
            cmd in prop_oneof![Just(HidCmd::CBOR), Just(HidCmd::MSG), Just(HidCmd::PING), (0xc0u8..=0xff).prop_map(HidCmd)],
            payload in prop::collection::vec(any::<u8>(), 0..=7609),
        ) {
            let reports = fragment(ChannelId(cid), cmd, &payload).unwrap();
            prop_assert_eq!(reports.len(), 1 + payload.len().saturating_sub(57).div_ceil(59));
            let mut asm = ResponseAssembler::new(ChannelId(cid));
            let mut out = None;
            for (i, r) in reports.iter().enumerate() {
                let event = asm.push(r).unwrap();
                if i + 1 < reports.len() { prop_assert!(event.is_none()); } else { out = event; }
            }
            prop_assert_eq!(out, Some(HostEvent::Response { cmd, payload }));
        }

        #[test]
        fn random_reports_never_panic(bytes in prop::collection::vec(any::<[u8; 64]>(), 1..20)) {
            let mut asm = ResponseAssembler::new(ChannelId(u32::from_be_bytes([bytes[0][0], bytes[0][1], bytes[0][2], bytes[0][3]])));
            for r in &bytes { let _ = asm.push(r); }
        }
    }
}
