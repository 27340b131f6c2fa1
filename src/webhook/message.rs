//! A webhook message as the Standard Webhooks specification (standardwebhooks.com) writes
//! it: a JSON body `{"type", "timestamp", "data"}` and three headers, `webhook-id` (the same
//! on every attempt), `webhook-timestamp` (unix seconds of the attempt) and
//! `webhook-signature`, `v1,` and the base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`
//! keyed with the base64-decoded part of the secret after `whsec_`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use time::format_description::well_known::Rfc3339;

use crate::store::OutboxMessage;

/// Why a message could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The stored secret is not `whsec_<base64>`.
    #[error("the webhook's secret is not whsec_<base64>")]
    Secret,
}

/// The body of `message`: the same bytes on every attempt.
pub fn body(message: &OutboxMessage) -> Bytes {
    let mut data = serde_json::json!({
        "tenant": message.tenant.as_str(),
        "key": message.key_id.as_str(),
        "owner": message.owner.as_str(),
        "name": message.key_name,
    });
    if let (Some(data), serde_json::Value::Object(detail)) = (data.as_object_mut(), &message.detail)
    {
        for (field, value) in detail {
            data.insert(field.clone(), value.clone());
        }
    }
    let body = serde_json::json!({
        "type": message.event.as_str(),
        // A stored time always formats; an empty string would only follow a corrupt row.
        "timestamp": message.occurred_at.format(&Rfc3339).unwrap_or_default(),
        "data": data,
    });
    Bytes::from(body.to_string())
}

/// The `webhook-signature` header of `body` sent as message `id` at `timestamp`.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignError> {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())
        .ok_or(SignError::Secret)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    Ok(format!("v1,{}", STANDARD.encode(context.sign().as_ref())))
}

/// The three headers of one attempt.
pub fn headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<[(&'static str, String); 3], SignError> {
    Ok([
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature(secret, id, timestamp, body)?),
    ])
}

#[cfg(test)]
mod tests {
    use super::signature;

    /// The example of the Standard Webhooks reference libraries (their test suites sign this
    /// payload with this secret, id and timestamp and expect this signature).
    #[test]
    fn signature_matches_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let timestamp = 1614265330;
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, timestamp, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_without_its_prefix_is_refused() {
        assert!(signature("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1, b"{}").is_err());
        assert!(signature("whsec_not base64!", "msg_1", 1, b"{}").is_err());
    }
}
