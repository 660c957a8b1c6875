//! The authenticator side: the software security key, its user-presence/UV policies, and `serve()` on a transport.
