//! The seeds' analytics hub: a relying service that accepts latchkey keys over mTLS.
//!
//! ```text
//! cargo run --release --example analytics_hub -- \
//!     --listen 127.0.0.1:9443 --ca-url https://127.0.0.1:8443 --ca-cert certs/ca.pem [--tenant acme]
//! ```
//!
//! - `GET /api/v1/metrics` needs `read:metrics`: the caller's tenant's event counts;
//! - `POST /api/v1/events` needs `write:events`: records an event for the caller's tenant;
//! - `GET /api/v1/whoami`: the identity the handshake proved.
//!
//! It follows the CA's CRL by long poll, so a revoked key is refused within a second, and it
//! never resumes a TLS session. Without `--tls-cert/--tls-key` it serves with a self-signed
//! `localhost` certificate (clients then need `-k` or that certificate).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use latchkey::model::TenantName;
use latchkey::relying::Relying;
use latchkey::tls::Identity;
use latchkey::tls::axum::Scoped;

/// A relying service for latchkey keys.
#[derive(Debug, Parser)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:9443")]
    listen: SocketAddr,
    /// The CA, for its chain and its CRL.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    ca_url: String,
    /// The CA's root certificate.
    #[arg(long, default_value = "certs/ca.pem")]
    ca_cert: PathBuf,
    /// Accept keys of these tenants only (repeatable); default any.
    #[arg(long = "tenant")]
    tenants: Vec<TenantName>,
    /// The SPIFFE trust domain of the CA.
    #[arg(long, default_value = latchkey::profile::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Trust only this chain instead of following the CA's issuers (PEM, e.g. `GET
    /// /v1/ca?tenant=acme` for a tenant with an intermediate of its own: no other tenant's
    /// key gets in, whatever --tenant says); revocations come from --crl-file then.
    #[arg(long, requires = "crl_file")]
    ca_chain: Option<PathBuf>,
    /// With --ca-chain: the CRL file to follow (DER or PEM, re-read when it changes; `latchkey
    /// crl sync` keeps one fresh).
    #[arg(long, requires = "ca_chain")]
    crl_file: Option<PathBuf>,
    /// This service's TLS certificate chain (PEM); default a self-signed localhost one.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// This service's TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Events recorded per tenant; no tenant sees another's.
#[derive(Default)]
struct Hub {
    events: Mutex<HashMap<String, HashMap<String, u64>>>,
}

#[derive(serde::Deserialize)]
struct Event {
    name: String,
}

latchkey::tls::axum::scope!(ReadMetrics = "read:metrics");

/// The scope is in the signature: without it the handler never runs.
async fn metrics(
    State(hub): State<Arc<Hub>>,
    Scoped(identity, _): Scoped<ReadMetrics>,
) -> Json<serde_json::Value> {
    let events = hub
        .events
        .lock()
        .map(|e| e.get(identity.tenant().as_str()).cloned())
        .unwrap_or_default();
    Json(serde_json::json!({ "tenant": identity.tenant(), "events": events.unwrap_or_default() }))
}

latchkey::tls::axum::scope!(WriteEvents = "write:events");

/// Authorization before validation: `Scoped<WriteEvents>` is read from the request's parts,
/// so axum runs it before the `Json` body extractor, and a key without `write:events` gets
/// 403 whatever its body (never a 422 telling it how to shape a request it may not make).
async fn record(
    State(hub): State<Arc<Hub>>,
    Scoped(identity, _): Scoped<WriteEvents>,
    Json(event): Json<Event>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    if let Ok(mut events) = hub.events.lock() {
        *events
            .entry(identity.tenant().to_string())
            .or_default()
            .entry(event.name.clone())
            .or_default() += 1;
    }
    (
        axum::http::StatusCode::ACCEPTED,
        Json(serde_json::json!({ "recorded": event.name })),
    )
}

async fn whoami(identity: Identity) -> Json<Identity> {
    Json(identity)
}

fn app() -> Router {
    Router::new()
        .route("/api/v1/metrics", get(metrics))
        .route("/api/v1/events", post(record))
        .route("/api/v1/whoami", get(whoami))
        .with_state(Arc::new(Hub::default()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let root_pem = std::fs::read(&args.ca_cert)?;

    // One builder: the CA's chain (its intermediate, anchored at the root we were given),
    // live revocation by long poll, the tenants accepted; it returns once the first CRL is
    // verified, and the one verifier it holds checks both handshakes and requests.
    let builder = Relying::builder(&args.trust_domain);
    let builder = match (&args.ca_chain, &args.crl_file) {
        (Some(chain), Some(crl)) => builder
            .ca_chain(latchkey::tls::load_certificates(
                &std::fs::read(chain)?,
                "--ca-chain",
            )?)
            .crl_file(crl),
        _ => builder.follow_ca(&args.ca_url, &root_pem),
    };
    let builder = if args.tenants.is_empty() {
        builder.any_tenant()
    } else {
        builder.tenants(args.tenants.clone())
    };
    let relying = builder.build().await?;

    let (cert_chain, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (
            latchkey::tls::load_certificates(&std::fs::read(cert)?, "--tls-cert")?,
            latchkey::tls::load_private_key(&std::fs::read(key)?, "--tls-key")?,
        ),
        _ => {
            let generated =
                rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
            (
                vec![generated.cert.der().clone()],
                latchkey::tls::load_private_key(
                    generated.signing_key.serialize_pem().as_bytes(),
                    "generated",
                )?,
            )
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "analytics_hub listening on https://{}",
        listener.local_addr()?
    );
    relying
        .serve(listener, cert_chain, key, app(), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
