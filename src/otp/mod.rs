//! Sans-IO OATH: HOTP (RFC 4226), TOTP (RFC 6238), OCRA (RFC 6287), PSKC (RFC 6030), otpauth URIs,
//! the Digipass-style token model and the verification rules. No I/O; time and randomness are injected.
