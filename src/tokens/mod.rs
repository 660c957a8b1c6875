//! Token service: verification of OTP, challenge-response and signatures against the durable store,
//! with fail counters, lockout, audit and revocation. Combines `otp` (decisions) and `store` (durability).
