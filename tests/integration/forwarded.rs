//! Issue 11 point 6: a relying service behind a TLS-terminating proxy takes the identity
//! from the forwarded client certificate (Envoy's `X-Forwarded-Client-Cert`, nginx's
//! `$ssl_client_escaped_cert`), only from the configured proxy addresses, and verifies it
//! again against the real CA's chain and live CRL.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use latchkey::profile::DEFAULT_TRUST_DOMAIN;
use latchkey::relying::Relying;
use latchkey::tls::axum::Scoped;
use latchkey::tls::{ForwardedHeader, Identity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

use crate::support::*;

/// The proxy's address; the service trusts it alone.
const PROXY: &str = "127.0.0.2";
/// Some other host on the same network.
const STRANGER: &str = "127.0.0.3";

latchkey::scope!(ReadMetrics = "read:metrics");
latchkey::scope!(WriteEvents = "write:events");

async fn whoami(identity: Identity) -> String {
    format!(
        "{}@{} key={} scopes={}",
        identity.owner(),
        identity.tenant(),
        identity.key_id(),
        identity
            .scopes()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// A relying service built from the library, behind a proxy at [`PROXY`], verifying with
/// the CA's chain and following its CRL. Returns its address.
async fn service(ca: &Ca, header: ForwardedHeader) -> SocketAddr {
    let relying = Relying::builder(DEFAULT_TRUST_DOMAIN)
        .any_tenant()
        .follow_ca(&ca.url, &ca.ca_pem())
        .build()
        .await
        .expect("the relying service is configured, with a CRL from the CA");
    let app =
        Router::new()
            .route("/whoami", get(whoami))
            .route(
                "/metrics",
                get(|Scoped(identity, _): Scoped<ReadMetrics>| async move {
                    identity.owner().to_string()
                }),
            )
            .route(
                "/events",
                get(|Scoped(identity, _): Scoped<WriteEvents>| async move {
                    identity.owner().to_string()
                }),
            );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(relying.serve_behind_proxy(
        listener,
        header,
        [PROXY.parse().unwrap()],
        app,
        std::future::pending(),
    ));
    addr
}

/// `GET path` to `service` from the loopback address `from`, with `headers`: status, body.
async fn get_from(
    service: SocketAddr,
    from: &str,
    path: &str,
    headers: &[(&str, String)],
) -> (u16, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let mut tcp = socket.connect(service).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: service\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// URL-encoding as nginx's `$ssl_client_escaped_cert` and Envoy's `Cert=` write it.
fn escaped(pem: &str) -> String {
    pem.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An Envoy XFCC value whose last element (the trusted proxy's) carries `pem`, after an
/// element that an earlier hop (or the client) put there with `earlier_pem`.
fn xfcc(earlier_pem: &str, pem: &str) -> String {
    format!(
        "By=spiffe://elsewhere;Cert=\"{}\";Subject=\"O=acme,CN=alice\",By=spiffe://proxy;Hash=00;Cert=\"{}\";Subject=\"O=acme,CN=alice\";URI=spiffe://{DEFAULT_TRUST_DOMAIN}/x",
        escaped(earlier_pem),
        escaped(pem)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_from_a_forwarded_certificate_only_from_the_proxy_and_live_revocation() {
    let ca = Ca::start();
    ca.tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let alice = ca
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;
    // A look-alike: another CA, same tenant, owner and scopes.
    let other = Ca::start();
    other
        .tenant_with_user("acme", "alice@acme", &["read:metrics"])
        .await;
    let foreign = other
        .enroll_into("alice@acme", &["read:metrics"], "alice")
        .await;

    let envoy = service(&ca, ForwardedHeader::EnvoyXfcc).await;
    let nginx = service(
        &ca,
        ForwardedHeader::EscapedPem("x-client-cert".parse().unwrap()),
    )
    .await;
    let xfcc_alice = vec![(
        "X-Forwarded-Client-Cert",
        xfcc(&foreign.certificate, &alice.certificate),
    )];
    let nginx_alice = vec![("X-Client-Cert", escaped(&alice.certificate))];

    // From the proxy: the identity, with tenant, key id and scopes; the scope guard works.
    let (status, body) = get_from(envoy, PROXY, "/whoami", &xfcc_alice).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        format!("alice@acme key={} scopes=read:metrics", alice.key.id)
    );
    let (status, body) = get_from(nginx, PROXY, "/whoami", &nginx_alice).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("alice@acme key="), "{body}");
    assert_eq!(get_from(envoy, PROXY, "/metrics", &xfcc_alice).await.0, 200);
    let (status, body) = get_from(envoy, PROXY, "/events", &xfcc_alice).await;
    assert_eq!(status, 403);
    assert!(body.contains("scope_not_granted"), "{body}");

    // The same headers from anywhere else: refused, with a code that says why.
    for (service, headers) in [(envoy, &xfcc_alice), (nginx, &nginx_alice)] {
        for from in [STRANGER, "127.0.0.1"] {
            let (status, body) = get_from(service, from, "/whoami", headers).await;
            assert_eq!(status, 403, "from {from}: {body}");
            assert!(
                body.contains("forwarded_certificate_untrusted_source"),
                "{body}"
            );
        }
    }

    // Another CA's certificate, even from the proxy: refused by the verifier.
    let (status, body) = get_from(
        envoy,
        PROXY,
        "/whoami",
        &[(
            "X-Forwarded-Client-Cert",
            xfcc(&alice.certificate, &foreign.certificate),
        )],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("forwarded_certificate_invalid"), "{body}");
    let (status, body) = get_from(
        nginx,
        PROXY,
        "/whoami",
        &[("X-Client-Cert", escaped(&foreign.certificate))],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("forwarded_certificate_invalid"), "{body}");

    // No certificate: 401, whether the header is missing or empty (nginx, no client cert).
    for (service, headers) in [
        (envoy, vec![]),
        (nginx, vec![]),
        (nginx, vec![("X-Client-Cert", String::new())]),
    ] {
        let (status, body) = get_from(service, PROXY, "/whoami", &headers).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("certificate_required"), "{body}");
    }

    // Revoked at the CA: refused as soon as the CRL arrives (the service follows it live).
    ca.with_identity(&ca.path("alice"))
        .revoke_key(None, &alice.key.id, Some("key_compromise"))
        .await
        .expect("revoke");
    let revoked_at = Instant::now();
    for (service, headers) in [(envoy, &xfcc_alice), (nginx, &nginx_alice)] {
        loop {
            let (status, body) = get_from(service, PROXY, "/whoami", headers).await;
            if status == 401 {
                assert!(body.contains("forwarded_certificate_invalid"), "{body}");
                assert!(body.contains("Revoked"), "{body}");
                break;
            }
            assert_eq!(status, 200, "{body}");
            assert!(
                revoked_at.elapsed() < Duration::from_secs(3),
                "still accepted 3 s after the revocation"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
