//! HID report transports: a pipe of 64-byte reports (in-process pair, SOCK_SEQPACKET socket, hidraw, uhid).
//! Knows nothing of CTAPHID; may not import `ctaphid`, `ctap2` or anything above.
