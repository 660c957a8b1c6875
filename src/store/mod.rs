//! Durable state: SQLite (WAL, synchronous=FULL), group commit, encryption at rest under the store key.
//! All SQL of the project lives in this module.

pub(crate) mod webauthn;
