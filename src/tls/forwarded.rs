//! Relying services behind a TLS-terminating proxy (nginx, Envoy): the proxy checks the
//! client's certificate and forwards it in a header; the service takes it only from the
//! proxies it names (the TCP peer of the connection, never an address a header claims),
//! and verifies it again with the same [`LatchkeyVerifier`] a direct mTLS listener uses:
//! chain to the CA, the latchkey identity, pinned tenants, the live revocation set. So a
//! key revoked a second ago stops working here as fast as on a direct listener, whatever
//! CRL the proxy holds.
//!
//! `relying::Relying::serve_behind_proxy` serves a router so (plain HTTP: the proxy
//! terminated TLS); or give `relying::Relying::forwarded`'s [`ForwardedClientCert`] to
//! `axum::serve` yourself as an `axum::Extension` with
//! `into_make_service_with_connect_info::<SocketAddr>()`; then the [`Identity`] extractor
//! yields the forwarded key's identity exactly as it yields a handshake's.
//!
//! A request that carries the header but does not come from a configured proxy is refused
//! (403 `forwarded_certificate_untrusted_source`) and logged: someone is trying to claim a
//! key they do not hold, or the proxy list is wrong.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::axum::Rejection;
use super::{Identity, LatchkeyVerifier};
use crate::model::IpNet;

/// How the proxy forwards the client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// Envoy's `X-Forwarded-Client-Cert`: `;`-separated `Key=value` pairs per element
    /// (`By=…;Hash=…;Cert="<url-encoded PEM>";Subject="…";URI=…`), elements separated by
    /// commas, one per proxy hop. The last element is the one the nearest proxy (the trusted
    /// one) added; its `Cert` is read. Configure Envoy with `forward_client_cert_details:
    /// SANITIZE_SET` and `set_current_client_cert_details: { cert: true }`.
    EnvoyXfcc,
    /// A header holding the URL-encoded PEM certificate, as nginx writes it with
    /// `proxy_set_header <name> $ssl_client_escaped_cert;` (empty when the client sent
    /// none).
    EscapedPem(HeaderName),
}

impl ForwardedHeader {
    /// The header's name.
    pub fn name(&self) -> HeaderName {
        match self {
            Self::EnvoyXfcc => HeaderName::from_static("x-forwarded-client-cert"),
            Self::EscapedPem(name) => name.clone(),
        }
    }
}

/// Where a relying service behind a proxy takes client certificates from: which header,
/// from which proxy addresses, verified by which verifier. Cheap to clone.
#[derive(Clone)]
pub struct ForwardedClientCert {
    inner: Arc<Inner>,
}

struct Inner {
    header: ForwardedHeader,
    proxies: Vec<IpNet>,
    verifier: Arc<LatchkeyVerifier>,
}

impl std::fmt::Debug for ForwardedClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardedClientCert")
            .field("header", &self.inner.header)
            .field("proxies", &self.inner.proxies)
            .finish_non_exhaustive()
    }
}

impl ForwardedClientCert {
    /// Takes the certificate in `header` from connections whose TCP peer is in `proxies`,
    /// verified by `verifier`. Crate-private: `relying::Relying::forwarded` gives it the one
    /// verifier of the service.
    pub(crate) fn new(
        header: ForwardedHeader,
        proxies: impl IntoIterator<Item = IpNet>,
        verifier: Arc<LatchkeyVerifier>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                header,
                proxies: proxies.into_iter().collect(),
                verifier,
            }),
        }
    }

    /// The identity the request from `peer` (the connection's TCP peer) with `headers`
    /// proves: refused if the header comes from an address that is not a proxy, if it holds
    /// no readable certificate, or if the verifier refuses the certificate now.
    pub fn identity(&self, peer: IpAddr, headers: &HeaderMap) -> Result<Identity, Rejection> {
        let name = self.inner.header.name();
        let mut values = headers.get_all(&name).iter().peekable();
        if values.peek().is_none() {
            return Err(Rejection::NoIdentity);
        }
        if !self.inner.proxies.iter().any(|net| net.contains(peer)) {
            tracing::warn!(
                %peer,
                header = %name,
                "a forwarded client certificate from an address that is not a configured proxy; refused"
            );
            return Err(Rejection::UntrustedForwarder);
        }
        // Several header lines are one comma-separated list; the proxy's own is the last.
        let last = values.last().map(|v| v.as_bytes()).unwrap_or_default();
        let pem = match &self.inner.header {
            ForwardedHeader::EnvoyXfcc => xfcc_cert(last),
            ForwardedHeader::EscapedPem(_) => Some(percent_decode(last)),
        }
        .ok_or_else(|| Rejection::BadForwardedCertificate("no Cert in the header".into()))?;
        if pem.iter().all(u8::is_ascii_whitespace) {
            // nginx sends an empty value when the client presented no certificate.
            return Err(Rejection::NoIdentity);
        }
        let der = CertificateDer::from_pem_slice(&pem)
            .map_err(|_| Rejection::BadForwardedCertificate("not a PEM certificate".into()))?;
        self.inner
            .verifier
            .verify(&der, &[], UnixTime::now())
            .map_err(|e| Rejection::BadForwardedCertificate(e.to_string()))
    }
}

/// Serves `router` over plain HTTP on `listener`, for the hop from a TLS-terminating proxy:
/// [`Identity`] comes from the certificate `forwarded` describes. Bind `listener` where only
/// the proxy reaches it (loopback, a private interface); a request from elsewhere carrying
/// the header is refused anyway. Returns when `shutdown` completes and open requests finish.
pub(crate) async fn serve_behind_proxy(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    forwarded: ForwardedClientCert,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router
        .layer(axum::Extension(forwarded))
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The URL-decoded `Cert` of the last element of an `X-Forwarded-Client-Cert` value.
fn xfcc_cert(value: &[u8]) -> Option<Vec<u8>> {
    let element = split_unquoted(value, b',').pop()?;
    split_unquoted(element, b';').into_iter().find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii());
        if !key.eq_ignore_ascii_case(b"Cert") {
            return None;
        }
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        Some(percent_decode(value))
    })
}

/// Splits at `sep` outside double quotes (Envoy quotes values holding `,`, `;` or `=`, and
/// escapes `"` inside them with a backslash).
fn split_unquoted(value: &[u8], sep: u8) -> Vec<&[u8]> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, &b) in value.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// `%XX` decoded; anything else (including a malformed escape) as it is.
fn percent_decode(value: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%'
            && let (Some(h), Some(l)) = (
                value.get(i + 1).copied().and_then(hex),
                value.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_cert_of_the_last_xfcc_element() {
        let value = br#"By=spiffe://a;Cert="-----BEGIN%20FIRST";Subject="CN=x,O=y",By=spiffe://b;Hash=ab;Cert="-----BEGIN%20CERTIFICATE-----%0AAAA%3D%0A";Subject="O=acme,CN=alice";URI=spiffe://t/k"#;
        assert_eq!(
            xfcc_cert(value).unwrap(),
            b"-----BEGIN CERTIFICATE-----\nAAA=\n".to_vec()
        );
        assert_eq!(xfcc_cert(b"By=x;Hash=y"), None);
        assert_eq!(percent_decode(b"a%2"), b"a%2".to_vec());
    }
}
