//! Integration tests: each starts the real `latchkey serve` on an ephemeral loopback port
//! (as a process, or in process on a clock the test moves: see `support`) and talks HTTPS
//! and mTLS to it, with the library client, the CLI, openssl and curl. `verifier` needs no
//! server: it checks the relying-service verifier through its public API against a CA's
//! chain made in the test; `relying` follows a fake CA's issuer list through a rotation.

#![allow(clippy::unwrap_used, reason = "a panic is how a test fails")]

mod admin;
mod console;
mod crash;
mod crl_chain;
mod deltas;
mod enroll;
mod errors;
mod forwarded;
mod hardening;
mod hsm;
mod hub;
mod init;
mod interop;
mod inventory;
mod key_protection;
mod limits;
mod lint;
mod matrix;
mod openapi;
mod pkcs12;
mod readme;
mod recipes;
mod relying;
mod renewal;
mod renewal_limits;
mod replicas;
mod revocation;
mod rotation;
mod store;
mod support;
mod tls;
mod verifier;
mod webhooks;
