//! Enrollment token secrets: 256 random bits, shown once, stored as a SHA-256 hash. The
//! secret has full entropy, so a fast hash is enough; a slow one would only add latency.

use base64::Engine;

/// The prefix that makes a latchkey token recognisable (to people and to secret scanners).
const PREFIX: &str = "lkt_";

/// A new token secret.
pub fn generate() -> String {
    let bytes: [u8; 32] = crate::random_bytes();
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a token secret.
pub fn hash(secret: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.as_bytes(),
    ))
}
