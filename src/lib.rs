//! latchkey: a small mutual-TLS certificate authority whose client certificates are the
//! API keys.
//!
//! Without default features this crate is what a relying service or a key holder links:
//! the vocabulary ([`model`]), the certificate profile ([`profile`]), the wire types of the
//! HTTP API ([`api`]), one builder configuring a relying service ([`relying`]), the TLS side
//! it uses ([`tls`]) and the client ([`client`]). The `server` feature adds the CA itself: the
//! signer (`ca`), the `authority` that decides who gets what, the CRL `publisher` beside it,
//! the `store`, the `http` edge and the server process around them.

#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod clock;
pub mod model;
pub mod profile;
pub mod relying;
pub mod tls;

// Plumbing: crate-private in the library build; the CA binary (`src/cli`, another crate)
// and its tests reach them across the crate boundary, so there they are public but hidden.
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod files;
#[cfg(not(feature = "server"))]
pub(crate) mod files;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod pem;
#[cfg(not(feature = "server"))]
pub(crate) mod pem;
#[cfg(feature = "axum")]
pub(crate) mod per_source;

#[cfg(feature = "server")]
pub mod authority;
#[cfg(feature = "server")]
pub mod ca;
#[cfg(feature = "server")]
pub mod home;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod issuers;
#[cfg(feature = "server")]
pub mod publisher;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod webhook;

/// The README, so that `cargo test --doc` compiles every ```` ```rust ```` block in it: the
/// library section's snippets cannot drift from the API.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// `N` bytes from the OS CSPRNG.
///
/// Panics only if the operating system cannot supply randomness, in which case no
/// key, serial or token can be made safely and stopping is the right outcome.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the OS CSPRNG failed");
    out
}
