//! A bounded load generator for latchkey issuance over HTTPS keep-alive (loopback only).
//!
//! ```text
//! cargo run --release --example loadgen -- --server https://127.0.0.1:8443 \
//!     --home certs --concurrency 16 --count 2000 --warmup 100 [--server-pid PID]
//! ```
//!
//! Credential: one enrollment token per request, made beforehand through the admin API. A
//! token costs one indexed lookup and one conditional update in the issuing transaction, the
//! cheapest real credential (a password costs ~40 ms of argon2id by design, which would
//! measure argon2, not the CA). CSRs (ECDSA P-256) are made beforehand too. Each worker keeps
//! one connection open and sends its requests one after another. Prints one JSON line:
//! certificates/s, p50, p99, errors, and with `--server-pid` the server's CPU per certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use latchkey::api::{EnrollRequest, NewTenant, NewToken};
use latchkey::client::{Client, KeyType, new_key_pair};

#[derive(Debug, Parser)]
struct Args {
    /// The CA (loopback only).
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    server: String,
    /// The CA home, for the admin certificate and ca.pem.
    #[arg(long, default_value = "certs")]
    home: PathBuf,
    /// Concurrent connections.
    #[arg(long, default_value = "16")]
    concurrency: usize,
    /// Measured requests.
    #[arg(long, default_value = "2000")]
    count: usize,
    /// Requests sent first and not measured.
    #[arg(long, default_value = "100")]
    warmup: usize,
    /// The server's process id, to report its CPU time per certificate.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The tenant to enroll into (made if missing).
    #[arg(long, default_value = "bench")]
    tenant: String,
}

/// User plus system CPU time of a process, from /proc.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let uri: http::Uri = args.server.parse()?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!("refusing non-loopback target {host}").into());
    }
    let port = uri.port_u16().unwrap_or(443);
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
    let tenant = NewTenant {
        name: args.tenant.clone(),
        max_key_days: None,
    };
    if let Err(e) = admin.add_tenant(&tenant).await
        && !e.to_string().contains("already_exists")
    {
        return Err(e.into());
    }

    // Tokens and CSRs, made before the clock starts.
    let total = args.count + args.warmup;
    let mut work = Vec::with_capacity(total);
    let mut makers = Vec::new();
    for w in 0..8 {
        let admin = admin.clone();
        let tenant = args.tenant.clone();
        let share = total / 8 + usize::from(w < total % 8);
        makers.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(share);
            for i in 0..share {
                let token = admin
                    .create_token(&NewToken {
                        owner: format!("load-{w}-{i}@{tenant}"),
                        scopes: vec!["bench:issue".into()],
                        ttl_seconds: Some(3600),
                    })
                    .await?
                    .token
                    .unwrap_or_default();
                let csr = new_key_pair(KeyType::P256)?.csr_pem;
                let body = serde_json::to_vec(&EnrollRequest {
                    csr,
                    name: "load".into(),
                    description: String::new(),
                    scopes: vec![],
                    ttl_seconds: None,
                    expires_at: None,
                })
                .unwrap_or_default();
                out.push((token, Bytes::from(body)));
            }
            Ok::<_, latchkey::client::ClientError>(out)
        }));
    }
    for m in makers {
        work.extend(m.await??);
    }

    let roots = latchkey::tls::load_certificates(&ca_pem, "ca.pem")?;
    let config = Arc::new(latchkey::tls::client_config(&roots, None)?);
    let (warm, measured) = work.split_at(args.warmup.min(work.len()));
    run(&config, &host, port, warm.to_vec(), args.concurrency).await?;
    let cpu_before = args.server_pid.and_then(cpu_time);
    let started = Instant::now();
    let (mut latencies, errors) =
        run(&config, &host, port, measured.to_vec(), args.concurrency).await?;
    let elapsed = started.elapsed();
    let cpu_after = args.server_pid.and_then(cpu_time);
    latencies.sort();
    let ok = latencies.len();
    let result = serde_json::json!({
        "tool": "latchkey loadgen",
        "credential": "enrollment token per request",
        "concurrency": args.concurrency,
        "requests": args.count,
        "ok": ok,
        "errors": errors,
        "certs_per_s": ok as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
        "server_cpu_ms_per_cert": match (cpu_before, cpu_after) {
            (Some(a), Some(b)) if ok > 0 => Some((b - a).as_secs_f64() * 1000.0 / ok as f64),
            _ => None,
        },
    });
    println!("{result}");
    Ok(())
}

/// Sends `work` over `concurrency` keep-alive connections; returns the latencies of the
/// successful requests and the number of failures.
async fn run(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    work: Vec<(String, Bytes)>,
    concurrency: usize,
) -> Result<(Vec<Duration>, usize), Box<dyn std::error::Error>> {
    let queue = Arc::new(std::sync::Mutex::new(work));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let config = config.clone();
        let host = host.to_owned();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(connection);
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((token, body)) = next else { break };
                let request = http::Request::post("/v1/keys")
                    .header(http::header::HOST, host.as_str())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Full::new(body))?;
                let started = Instant::now();
                let response = sender.send_request(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                if status == http::StatusCode::CREATED {
                    latencies.push(started.elapsed());
                } else {
                    errors += 1;
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((latencies, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?.map_err(|e| e.to_string())?;
        all.extend(l);
        errors += e;
    }
    Ok((all, errors))
}
