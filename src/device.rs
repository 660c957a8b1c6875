//! Async host driver: a HID transport + `ctaphid` + `ctap2`; keepalive, cancel, timeouts, several keys at once.
