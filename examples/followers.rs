//! Revocation followers at scale, against a running CA on loopback (issue 13's targets).
//!
//! ```text
//! cargo run --release --example followers -- --server https://127.0.0.1:8443 --home certs \
//!     --library 100 --revocations 100 --server-pid PID
//! cargo run --release --example followers -- --server https://127.0.0.1:8443 --home certs \
//!     --pollers 10000 --revocations 5 --server-pid PID
//! ```
//!
//! `--library N`: N relying services in this process, each the real library
//! (`Relying::builder().follow_ca`), each with its own CRL state. Then one revocation after
//! another; for each, the time from the revocation's answer until each follower refuses the
//! serial. Prints p50, p99 and max over all followers and revocations.
//!
//! `--pollers N`: N followers of the delta protocol on keep-alive HTTPS connections (what a
//! fleet of relying services costs the CA): each long-polls `.../crl/latest` and fetches the
//! delta from the CRL it holds. For each revocation, the time until the last of them has the
//! delta; and the CA's RSS per follower (its RSS with all of them polling, minus before they
//! connected, over N), and the bytes one follower received per revocation.
//!
//! Loopback only; bounded by N and the revocations; stops by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use latchkey::api::{EnrollRequest, NewTenant, NewToken};
use latchkey::client::{Auth, Client, KeyType, new_key_pair};
use latchkey::relying::Relying;

#[derive(Debug, Parser)]
struct Args {
    /// The CA (loopback only).
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    server: String,
    /// The CA home, for the admin certificate and ca.pem.
    #[arg(long, default_value = "certs")]
    home: std::path::PathBuf,
    /// Run this many relying services of the library, each following the CA.
    #[arg(long)]
    library: Option<usize>,
    /// Run this many followers of the delta protocol on keep-alive connections.
    #[arg(long)]
    pollers: Option<usize>,
    /// Revocations, one after another, each waited for.
    #[arg(long, default_value = "10")]
    revocations: usize,
    /// The CA's process id, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The trust domain of the CA.
    #[arg(long, default_value = "latchkey.internal")]
    trust_domain: String,
}

/// A process's resident set, in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let uri: http::Uri = args.server.parse()?;
    let host = uri.host().unwrap_or_default().to_owned();
    if !(host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
    {
        return Err(format!("refusing non-loopback target {host}").into());
    }
    let ca_pem = std::fs::read(args.home.join("ca.pem"))?;
    let admin_dir = args.home.join("admin");
    let admin = Client::new(
        &args.server,
        &ca_pem,
        Some((
            &std::fs::read(admin_dir.join("chain.pem"))?,
            &std::fs::read(admin_dir.join("key.pem"))?,
        )),
    )?;
    let keys = keys_to_revoke(&admin, &args.server, &ca_pem, args.revocations).await?;
    let list = admin.issuers(None, 0).await?.ok_or("no issuers")?;
    let issuer = list
        .issuers
        .iter()
        .rev()
        .find(|i| i.crl.is_some())
        .ok_or("no issuer with a CRL")?;
    let crl_path = issuer.crl.clone().ok_or("no CRL path")?;
    let intermediate =
        latchkey::tls::load_certificates(issuer.certificate.as_bytes(), "issuer")?.remove(0);
    if let Some(n) = args.library {
        library(&args, &admin, &ca_pem, &intermediate, n, &keys).await
    } else if let Some(n) = args.pollers {
        pollers(&args, &admin, &ca_pem, &crl_path, n, &keys).await
    } else {
        Err("give --library N or --pollers N".into())
    }
}

/// Enrolls `count` keys to revoke; returns their ids and serials.
async fn keys_to_revoke(
    admin: &Client,
    server: &str,
    ca_pem: &[u8],
    count: usize,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let tenant = NewTenant {
        name: "followers".parse()?,
        max_key_days: None,
        dedicated_issuer: false,
    };
    if let Err(e) = admin.add_tenant(&tenant).await
        && !e.to_string().contains("already_exists")
    {
        return Err(e.into());
    }
    let anonymous = Client::new(server, ca_pem, None)?;
    let mut keys = Vec::new();
    for i in 0..count {
        let token = admin
            .create_token(&NewToken {
                owner: format!("revoked-{i}@followers").parse()?,
                scopes: latchkey::model::ScopeSet::parse(["bench:follow"])?,
                ttl_seconds: Some(3600),
            })
            .await?
            .token
            .map(latchkey::api::Secret::into_inner)
            .unwrap_or_default();
        let answer = anonymous
            .enroll(
                &Auth::Token(token),
                &EnrollRequest {
                    csr: new_key_pair(KeyType::P256)?.csr_pem,
                    name: format!("k{i}"),
                    description: String::new(),
                    scopes: latchkey::model::ScopeSet::default(),
                    ttl_seconds: None,
                    expires_at: None,
                },
            )
            .await?;
        let serial: latchkey::model::Serial = answer.key.certificates[0].serial.parse()?;
        keys.push((answer.key.id.to_string(), serial.as_bytes().to_vec()));
    }
    Ok(keys)
}

/// `--library N`.
async fn library(
    args: &Args,
    admin: &Client,
    ca_pem: &[u8],
    intermediate: &rustls_pki_types::CertificateDer<'static>,
    n: usize,
    keys: &[(String, Vec<u8>)],
) -> Result<(), Error> {
    let before = args.server_pid.and_then(rss);
    let mut followers = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let relying = Relying::builder(&args.trust_domain)
            .any_tenant()
            .follow_ca(&args.server, ca_pem)
            .first_crl_within(Duration::from_secs(600))
            .build()
            .await?;
        let revocations = relying
            .verifier()
            .revocations_of(intermediate)
            .ok_or("the intermediate is not followed")?;
        followers.push((relying, revocations));
    }
    eprintln!(
        "{n} followers have the whole CRL after {:?}",
        started.elapsed()
    );
    let mut latencies = Vec::new();
    for (id, serial) in keys {
        admin.revoke_key(None, id, Some("key_compromise")).await?;
        let revoked = Instant::now();
        let mut pending: Vec<usize> = (0..n).collect();
        while !pending.is_empty() {
            pending.retain(|&i| {
                let taken = followers[i]
                    .1
                    .current()
                    .is_some_and(|set| set.is_revoked(serial));
                if taken {
                    latencies.push(revoked.elapsed());
                }
                !taken
            });
            if revoked.elapsed() > Duration::from_secs(60) {
                return Err(format!("{} followers missed a revocation", pending.len()).into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "tool": "latchkey followers",
            "mode": "library",
            "followers": n,
            "revocations": keys.len(),
            "applied_p50_ms": percentile(&latencies, 50.0),
            "applied_p99_ms": percentile(&latencies, 99.0),
            "applied_max_ms": percentile(&latencies, 100.0),
            "ca_rss_mb_before": before.map(|b| b / 1_000_000),
            "ca_rss_mb_after": args.server_pid.and_then(rss).map(|b| b / 1_000_000),
        })
    );
    drop(followers);
    Ok(())
}

/// `--pollers N`.
async fn pollers(
    args: &Args,
    admin: &Client,
    ca_pem: &[u8],
    crl_path: &str,
    n: usize,
    keys: &[(String, Vec<u8>)],
) -> Result<(), Error> {
    let uri: http::Uri = args.server.parse()?;
    let host = uri.host().unwrap_or_default().to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let roots = latchkey::tls::load_certificates(ca_pem, "ca.pem")?;
    let config = Arc::new(latchkey::tls::client_config(&roots, None)?);
    let latest = admin.latest_crl(crl_path, None, 0).await?;
    let before = args.server_pid.and_then(rss);
    // Each follower reports (the number it reached, when, bytes received) as it goes.
    let (reports, mut reached) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant, usize)>();
    let connected = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let (config, host, path) = (config.clone(), host.clone(), crl_path.to_owned());
        let (reports, up) = (reports.clone(), connected.clone());
        let held = latest.number;
        tokio::spawn(async move {
            if let Err(e) = poller(config, &host, port, &path, held, reports, up).await {
                eprintln!("a follower stopped: {e}");
            }
        });
        // Handshakes in batches: the CA's TLS accept is the work here, not the point.
        if connected.load(Ordering::Relaxed) + 200 < n {
            tokio::task::yield_now().await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while connected.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            return Err("the followers did not all connect".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every poll is waiting now; let the CA settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let polling = args.server_pid.and_then(rss);
    let mut last = Vec::new();
    let mut bytes = Vec::new();
    let mut number = latest.number;
    for (id, _) in keys {
        admin.revoke_key(None, id, Some("key_compromise")).await?;
        let revoked = Instant::now();
        let mut done = 0;
        let mut slowest = Duration::ZERO;
        let target = number + 1;
        while done < n {
            let (reached_number, at, received) =
                tokio::time::timeout(Duration::from_secs(60), reached.recv())
                    .await?
                    .ok_or("the followers stopped")?;
            if reached_number >= target {
                done += 1;
                slowest = slowest.max(at.saturating_duration_since(revoked));
                bytes.push(received);
                number = number.max(reached_number);
            }
        }
        last.push(slowest);
    }
    last.sort();
    bytes.sort_unstable();
    let per_follower = match (before, polling) {
        (Some(b), Some(p)) => Some((p.saturating_sub(b)) as f64 / n as f64 / 1024.0),
        _ => None,
    };
    println!(
        "{}",
        serde_json::json!({
            "tool": "latchkey followers",
            "mode": "pollers",
            "followers": n,
            "revocations": keys.len(),
            "last_follower_ms": last.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "last_follower_median_ms": percentile(&last, 50.0),
            "bytes_per_revocation_median": bytes.get(bytes.len() / 2),
            "ca_rss_kb_per_follower": per_follower,
            "ca_rss_mb_before": before.map(|b| b / 1_000_000),
            "ca_rss_mb_polling": polling.map(|b| b / 1_000_000),
        })
    );
    Ok(())
}

/// One follower of the delta protocol on one keep-alive connection: long-polls for a number
/// above the one held, fetches the delta to it, reports.
async fn poller(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    crl_path: &str,
    mut held: i64,
    reports: tokio::sync::mpsc::UnboundedSender<(i64, Instant, usize)>,
    connected: Arc<AtomicUsize>,
) -> Result<(), Error> {
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    connected.fetch_add(1, Ordering::Relaxed);
    loop {
        let (status, body) = get(
            &mut sender,
            host,
            &format!("{crl_path}/latest?newer_than={held}&wait=60"),
        )
        .await?;
        if status != http::StatusCode::OK {
            return Err(format!("latest: {status}").into());
        }
        let latest: latchkey::api::LatestCrl = serde_json::from_slice(&body)?;
        if latest.number <= held {
            continue;
        }
        let Some(delta) = latest.delta else {
            return Err("no delta offered".into());
        };
        let (status, der) = get(&mut sender, host, &delta).await?;
        if status != http::StatusCode::OK {
            return Err(format!("delta: {status}").into());
        }
        held = latest.number;
        if reports
            .send((held, Instant::now(), body.len() + der.len()))
            .is_err()
        {
            return Ok(());
        }
    }
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> Result<(http::StatusCode, Bytes), Error> {
    sender.ready().await?;
    let request = http::Request::get(path)
        .header(http::header::HOST, host)
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}
