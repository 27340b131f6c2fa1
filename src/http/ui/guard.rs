//! What keeps another site from acting through an administrator's browser, and what every
//! console answer carries.
//!
//! Cross-site request forgery is refused three ways, each enough alone: every form carries
//! the per-session token that is also in a `__Host-` cookie (`Secure; HttpOnly;
//! SameSite=Strict`, so no other site can read, set or send it: a double submit), every
//! `POST` must come with an `Origin` naming this very site (and, where the browser sends
//! it, `Sec-Fetch-Site: same-origin`), and the Content-Security-Policy allows no inline
//! script, no frame around the console and no form posted elsewhere. The token lives in
//! the browser, not in the CA, so any replica and a restarted CA accept it.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

/// The cookie holding the session's form token. `__Host-`: the browser keeps it only if
/// it was set `Secure`, with `Path=/` and no `Domain`, so a neighbouring host cannot plant one.
const COOKIE: &str = "__Host-latchkey-console";

/// The form token of this browser session, put into the request by [`guard`] for the pages
/// to write into their forms and for [`super::form::Confirmed`] to compare.
#[derive(Debug, Clone)]
pub struct FormToken(pub String);

/// Why a change was refused before it reached its handler.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum Forged {
    /// No `Origin`, or another site's.
    #[error(
        "this change did not come from a page of this console (Origin); reload the page and try again"
    )]
    Origin,
    /// The form's token is not this session's.
    #[error("this form is stale or was not made by this console; reload the page and try again")]
    Token,
}

/// Middleware on every `/ui/` route: the session's form token (made on the first visit),
/// the origin check of changes, and the headers of every answer.
pub async fn guard(mut request: Request, next: Next) -> Response {
    let existing = cookie_token(request.headers());
    let token = existing.clone().unwrap_or_else(mint);
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes && let Err(forged) = same_origin(request.headers()) {
        return secure(super::refusal(forged));
    }
    request.extensions_mut().insert(FormToken(token.clone()));
    let mut response = next.run(request).await;
    if existing.is_none()
        && let Ok(cookie) = HeaderValue::from_str(&format!(
            "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict"
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    secure(response)
}

/// The headers every console answer carries: nothing runs but the CA's own script, nothing
/// loads from elsewhere, no page is framed or cached, and no other site learns where a link
/// to it was followed from.
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null`
    // with every form post, and the origin check could not tell the console from anyone.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Whether `given` is this session's token, compared in constant time.
pub fn matches(session: &FormToken, given: &str) -> bool {
    let (a, b) = (session.0.as_bytes(), given.as_bytes());
    !a.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A change must name this site as its origin: `Origin` is `https://` and the `Host` the
/// request was sent to. Browsers send it with every form `POST`; a missing one is refused.
fn same_origin(headers: &HeaderMap) -> Result<(), Forged> {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Err(Forged::Origin);
    }
    let origin = headers.get(header::ORIGIN).ok_or(Forged::Origin)?;
    let host = headers.get(header::HOST).ok_or(Forged::Origin)?;
    let expected = [b"https://".as_slice(), host.as_bytes()].concat();
    if origin.as_bytes().eq_ignore_ascii_case(&expected) {
        Ok(())
    } else {
        Err(Forged::Origin)
    }
}

/// The session token from the request's cookie, if it has a well-formed one.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && well_formed(value))
        .map(|(_, value)| value.to_owned())
}

/// What [`mint`] makes: 64 lowercase hex digits.
fn well_formed(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new session token: 256 random bits.
fn mint() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    // The system's random source does not fail on Linux once the kernel is up; if it ever
    // did, the all-zero token would be refused as stale by `Confirmed`, never accepted.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::error!("no randomness for the console's form token");
        return String::new();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_change_from_another_origin_or_none_is_refused() {
        let ok = headers(&[
            ("host", "127.0.0.1:8443"),
            ("origin", "https://127.0.0.1:8443"),
        ]);
        assert!(same_origin(&ok).is_ok());
        for bad in [
            headers(&[("host", "127.0.0.1:8443")]),
            headers(&[
                ("host", "127.0.0.1:8443"),
                ("origin", "https://evil.example"),
            ]),
            headers(&[
                ("host", "127.0.0.1:8443"),
                ("origin", "http://127.0.0.1:8443"),
            ]),
            headers(&[("host", "127.0.0.1:8443"), ("origin", "null")]),
            headers(&[
                ("host", "127.0.0.1:8443"),
                ("origin", "https://127.0.0.1:8443"),
                ("sec-fetch-site", "cross-site"),
            ]),
        ] {
            assert!(same_origin(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_token_comes_from_the_cookie_and_must_match_whole() {
        let token = mint();
        assert!(well_formed(&token));
        assert_ne!(token, mint());
        let cookie = format!("other=1; {COOKIE}={token}");
        assert_eq!(
            cookie_token(&headers(&[("cookie", &cookie)])),
            Some(token.clone())
        );
        assert_eq!(
            cookie_token(&headers(&[("cookie", "__Host-latchkey-console=short")])),
            None
        );
        let session = FormToken(token.clone());
        assert!(matches(&session, &token));
        assert!(!matches(&session, &token[..63]));
        assert!(!matches(&session, &mint()));
        assert!(
            !matches(&FormToken(String::new()), ""),
            "an unminted token matches nothing"
        );
    }
}
