//! Sans-IO CTAP2.1 and CTAP1/U2F messages, canonical CBOR codec, status codes, PIN/UV auth protocols 1 and 2.
//! Both the host driver and the software authenticator use these types. No I/O, no await.
