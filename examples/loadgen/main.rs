//! A bounded load generator for latchkey issuance over HTTPS keep-alive (loopback only),
//! and, with `--cfssl`, for cfssl's `sign` endpoint with the same CSRs and concurrency in the
//! same process, so that the two are measured by one driver in one sitting.
//!
//! ```text
//! cargo run --release --example loadgen -- --server https://127.0.0.1:8443 \
//!     --home certs --concurrency 16 --count 2000 --warmup 100 [--server-pid PID] \
//!     [--cfssl http://127.0.0.1:8888 --cfssl-pid PID]
//! ```
//!
//! Credential: one enrollment token per request, made beforehand through the admin API. A
//! token costs one indexed lookup and one conditional update in the issuing transaction, the
//! cheapest real credential (a password costs ~40 ms of argon2id by design, which would
//! measure argon2, not the CA). CSRs (ECDSA P-256) are made beforehand too. Each worker keeps
//! one connection open and sends its requests one after another. Prints one JSON line:
//! certificates/s, p50, p99, errors, and with `--server-pid` the server's CPU per certificate.
//!
//! Two more kinds of run, in modules of their own:
//!
//! - a relying service (`relying.rs`): `--handshakes URL` (a new mTLS connection per GET) or
//!   `--requests URL` (GETs over `--concurrency` keep-alive mTLS connections) against any
//!   loopback HTTPS server, with a latchkey key (`--client-chain`, `--client-key`) and the
//!   server's CA (`--trust`);
//! - a soak (`soak.rs`): issuance paced at `--rate` per second for `--duration` seconds, one
//!   JSON line a minute (with the server's RSS) and a final one.
//!
//! `--server-pid` takes several ids (comma-separated) for a server of several processes
//! (nginx's master and workers): their CPU is added up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use latchkey::api::{EnrollRequest, NewTenant, NewToken};
use latchkey::client::{Client, KeyType, new_key_pair};

mod connect;
mod relying;
mod soak;

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
    /// The server's process ids (comma-separated), to report its CPU time per certificate
    /// (per handshake, per request) and, in a soak, its RSS.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// The tenant to enroll into (made if missing).
    #[arg(long, default_value = "bench")]
    tenant: String,
    /// Also drive cfssl's API (plain HTTP) at this base URL with the same CSRs, first.
    #[arg(long)]
    cfssl: Option<String>,
    /// cfssl's process id, to report its CPU time per certificate.
    #[arg(long)]
    cfssl_pid: Option<u32>,
    /// Create this file when the measured requests start, for a profiler to attach then
    /// (`PROFILE=1 scripts/bench-vs-cfssl.sh`).
    #[arg(long)]
    mark: Option<PathBuf>,
    /// Instead of issuing: list this many pages of 100 keys as the administrator, over one
    /// keep-alive connection, each from the previous page's cursor, and report latencies.
    #[arg(long)]
    list_pages: Option<usize>,
    /// Instead of issuing: GET this loopback HTTPS URL, each time on a new TCP and TLS
    /// connection (a full mTLS handshake, no resumption), and report handshakes/s.
    #[arg(long, conflicts_with_all = ["requests", "rate", "cfssl", "list_pages"])]
    handshakes: Option<String>,
    /// Instead of issuing: GET this loopback HTTPS URL over `--concurrency` keep-alive mTLS
    /// connections, and report requests/s.
    #[arg(long, conflicts_with_all = ["rate", "cfssl", "list_pages"])]
    requests: Option<String>,
    /// With --handshakes/--requests: the client certificate chain (PEM, a latchkey key's
    /// chain.pem).
    #[arg(long)]
    client_chain: Option<PathBuf>,
    /// With --handshakes/--requests: the client's private key (PEM).
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// With --handshakes/--requests: the certificates that anchor the server's (PEM).
    #[arg(long)]
    trust: Option<PathBuf>,
    /// A name for the target in the JSON line (default the URL).
    #[arg(long)]
    label: Option<String>,
    /// Soak: issue at this many requests per second across all connections, paced, for
    /// `--duration` seconds (instead of `--count`).
    #[arg(long, requires = "duration", conflicts_with_all = ["cfssl", "list_pages"])]
    rate: Option<f64>,
    /// Soak: how long to issue at `--rate`, in seconds.
    #[arg(long, requires = "rate")]
    duration: Option<u64>,
    /// Soak: seconds between two progress lines.
    #[arg(long, default_value = "60")]
    report_every: u64,
    /// Concurrent token requests while preparing (tokens are made one per request).
    #[arg(long, default_value = "8")]
    token_concurrency: usize,
}

/// One request's worth of work: the body, and the Authorization header if any.
#[derive(Clone)]
struct Work {
    authorization: Option<String>,
    body: Bytes,
}

/// Where the requests go.
#[derive(Clone)]
enum Target {
    /// latchkey: HTTPS, `POST /v1/keys`, 201 on success.
    Latchkey {
        config: Arc<rustls::ClientConfig>,
        host: String,
        port: u16,
    },
    /// cfssl: plain HTTP, `POST /api/v1/cfssl/sign`, 200 on success.
    Cfssl { host: String, port: u16 },
}

/// User plus system CPU time of processes, added up; None when one is gone or none given.
fn cpu_time(pids: &[u32]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| cpu_time_of(pid)).sum()
}

/// CPU milliseconds per request between two readings of [`cpu_time`], if both were read.
fn cpu_ms_per(before: Option<Duration>, after: Option<Duration>, requests: usize) -> Option<f64> {
    match (before, after) {
        (Some(a), Some(b)) if requests > 0 => {
            Some((b - a).as_secs_f64() * 1000.0 / requests as f64)
        }
        _ => None,
    }
}

/// User plus system CPU time of a process, from /proc.
fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// A loopback host and port from a URL; anything else is refused.
fn loopback(url: &str) -> Result<(String, u16), Box<dyn std::error::Error>> {
    let uri: http::Uri = url.parse()?;
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let is_loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !is_loopback {
        return Err(format!("refusing non-loopback target {host}").into());
    }
    let default_port = if uri.scheme_str() == Some("http") {
        80
    } else {
        443
    };
    Ok((host, uri.port_u16().unwrap_or(default_port)))
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
    if let Some(url) = &args.handshakes {
        return relying::run(&args, url, relying::Mode::Handshakes).await;
    }
    if let Some(url) = &args.requests {
        return relying::run(&args, url, relying::Mode::Requests).await;
    }
    let (host, port) = loopback(&args.server)?;
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
    if let Some(pages) = args.list_pages {
        let roots = latchkey::tls::load_certificates(&ca_pem, "ca.pem")?;
        let identity = (
            latchkey::tls::load_certificates(
                &std::fs::read(admin_dir.join("chain.pem"))?,
                "chain",
            )?,
            latchkey::tls::load_private_key(&std::fs::read(admin_dir.join("key.pem"))?, "key")?,
        );
        let config = Arc::new(latchkey::tls::client_config(&roots, Some(identity))?);
        return list(config, &host, port, &args.tenant, pages).await;
    }
    let tenant = NewTenant {
        name: args.tenant.parse()?,
        max_key_days: None,
        dedicated_issuer: false,
    };
    if let Err(e) = admin.add_tenant(&tenant).await
        && !e.to_string().contains("already_exists")
    {
        return Err(e.into());
    }

    if let (Some(rate), Some(duration)) = (args.rate, args.duration) {
        return soak::run(&args, &ca_pem, &host, port, rate, duration).await;
    }

    // Tokens and CSRs, made before the clock starts.
    let prepared = prepare(
        &admin,
        &args.tenant,
        args.count + args.warmup,
        8,
        "load",
        3600,
    )
    .await?;

    let mut results = Vec::new();
    if let Some(cfssl) = &args.cfssl {
        let (host, port) = loopback(cfssl)?;
        let work = prepared
            .iter()
            .map(|(_, csr)| Work {
                authorization: None,
                body: Bytes::from(serde_json::json!({ "certificate_request": csr }).to_string()),
            })
            .collect();
        let target = Target::Cfssl { host, port };
        let pids = args.cfssl_pid.as_slice();
        results.push(measure("cfssl", &target, work, &args, pids).await?);
    }
    let roots = latchkey::tls::load_certificates(&ca_pem, "ca.pem")?;
    let config = Arc::new(latchkey::tls::client_config(&roots, None)?);
    let work = prepared
        .into_iter()
        .map(|(token, csr)| Work {
            authorization: Some(format!("Bearer {token}")),
            body: enroll_body(csr),
        })
        .collect();
    let target = Target::Latchkey { config, host, port };
    results.push(measure("latchkey", &target, work, &args, &args.server_pid).await?);
    for result in &results {
        println!("{result}");
    }
    if let [cfssl, latchkey] = results.as_slice() {
        let rate = |r: &serde_json::Value| r["certs_per_s"].as_f64().unwrap_or(f64::NAN);
        println!(
            "{}",
            serde_json::json!({
                "tool": "latchkey loadgen",
                "latchkey_over_cfssl_throughput": rate(latchkey) / rate(cfssl),
            })
        );
    }
    Ok(())
}

/// Makes `total` (enrollment token, CSR) pairs with `makers` concurrent token requests: owner
/// `<prefix>-<maker>-<n>@<tenant>`, scope `bench:issue`, each token valid `ttl_seconds`.
async fn prepare(
    admin: &Client,
    tenant: &str,
    total: usize,
    makers: usize,
    prefix: &str,
    ttl_seconds: i64,
) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let makers = makers.max(1);
    let mut prepared = Vec::with_capacity(total);
    let mut tasks = Vec::new();
    for w in 0..makers {
        let admin = admin.clone();
        let tenant = tenant.to_owned();
        let prefix = prefix.to_owned();
        let share = total / makers + usize::from(w < total % makers);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(share);
            for i in 0..share {
                let token = admin
                    .create_token(&NewToken {
                        owner: format!("{prefix}-{w}-{i}@{tenant}")
                            .parse()
                            .expect("<prefix>-<n>-<n>@<tenant> is a user"),
                        scopes: latchkey::model::ScopeSet::parse(["bench:issue"])
                            .expect("a valid scope"),
                        ttl_seconds: Some(ttl_seconds),
                    })
                    .await?
                    .token
                    .map(latchkey::api::Secret::into_inner)
                    .unwrap_or_default();
                out.push((token, new_key_pair(KeyType::P256)?.csr_pem));
            }
            Ok::<_, latchkey::client::ClientError>(out)
        }));
    }
    for t in tasks {
        prepared.extend(t.await??);
    }
    Ok(prepared)
}

/// The body of `POST /v1/keys` for a CSR.
fn enroll_body(csr: String) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&EnrollRequest {
            csr,
            name: "load".into(),
            description: String::new(),
            scopes: latchkey::model::ScopeSet::default(),
            ttl_seconds: None,
            expires_at: None,
        })
        .unwrap_or_default(),
    )
}

/// Walks `pages` pages of the tenant's keys (100 a page) and prints their latencies.
async fn list(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    tenant: &str,
    pages: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut sender = connect::https(&config, host, port)
        .await
        .map_err(|e| e as Box<dyn std::error::Error>)?;
    let mut latencies = Vec::with_capacity(pages);
    let mut cursor: Option<String> = None;
    let mut keys = 0;
    for _ in 0..pages {
        let mut path = format!("/v1/keys?tenant={tenant}&limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let request = http::Request::get(path)
            .header(http::header::HOST, host)
            .body(Full::new(Bytes::new()))?;
        let started = Instant::now();
        // The connection takes a moment to be ready again after a response.
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        latencies.push(started.elapsed());
        if !status.is_success() {
            return Err(format!(
                "listing failed: {status} {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        keys += page["keys"].as_array().map_or(0, Vec::len);
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let pages_read = latencies.len();
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "tool": "latchkey loadgen",
            "listing": format!("pages of 100 keys of tenant {tenant}, admin certificate, keep-alive"),
            "pages": pages_read,
            "keys": keys,
            "p50_ms": percentile(&latencies, 50.0),
            "p99_ms": percentile(&latencies, 99.0),
            "max_ms": latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        })
    );
    Ok(())
}

/// Warms up, then measures `args.count` requests; one JSON object with the results.
async fn measure(
    name: &str,
    target: &Target,
    work: Vec<Work>,
    args: &Args,
    pids: &[u32],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let (warm, measured) = work.split_at(args.warmup.min(work.len()));
    run(target, warm.to_vec(), args.concurrency).await?;
    if let Some(mark) = &args.mark {
        std::fs::write(mark, name)?;
    }
    let cpu_before = cpu_time(pids);
    let driver_before = cpu_time_of(std::process::id());
    let started = Instant::now();
    let (mut latencies, errors) = run(target, measured.to_vec(), args.concurrency).await?;
    let elapsed = started.elapsed();
    let cpu_after = cpu_time(pids);
    let driver_after = cpu_time_of(std::process::id());
    latencies.sort();
    let ok = latencies.len();
    Ok(serde_json::json!({
        "tool": "latchkey loadgen",
        "target": name,
        "credential": match target {
            Target::Latchkey { .. } => "enrollment token per request",
            Target::Cfssl { .. } => "none (cfssl's sign takes no credential)",
        },
        "concurrency": args.concurrency,
        "requests": measured.len(),
        "ok": ok,
        "errors": errors,
        "certs_per_s": ok as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
        "server_cpu_ms_per_cert": cpu_ms_per(cpu_before, cpu_after, ok),
        // The driver shares the machine's cores with the server: what it spends per request
        // (TLS to latchkey, plain HTTP to cfssl) is CPU the server cannot have.
        "driver_cpu_ms_per_cert": cpu_ms_per(driver_before, driver_after, ok),
    }))
}

type WorkerResult = Result<(Vec<Duration>, usize), Box<dyn std::error::Error + Send + Sync>>;

/// Sends `work` over `concurrency` keep-alive connections; returns the latencies of the
/// successful requests and the number of failures.
async fn run(
    target: &Target,
    work: Vec<Work>,
    concurrency: usize,
) -> Result<(Vec<Duration>, usize), Box<dyn std::error::Error>> {
    let queue = Arc::new(std::sync::Mutex::new(work));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let target = target.clone();
        workers.push(tokio::spawn(async move {
            match target {
                Target::Latchkey { config, host, port } => {
                    let tls = connect::tls(&config, &host, port).await?;
                    send_all(tls, &host, "/v1/keys", http::StatusCode::CREATED, &queue).await
                }
                Target::Cfssl { host, port } => {
                    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                    tcp.set_nodelay(true)?;
                    let path = "/api/v1/cfssl/sign";
                    send_all(tcp, &host, path, http::StatusCode::OK, &queue).await
                }
            }
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

/// One connection: takes work from `queue` until it is empty, one request at a time.
async fn send_all<S>(
    stream: S,
    host: &str,
    path: &str,
    success: http::StatusCode,
    queue: &std::sync::Mutex<Vec<Work>>,
) -> WorkerResult
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut latencies = Vec::new();
    let mut errors = 0usize;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    loop {
        let next = queue.lock().ok().and_then(|mut q| q.pop());
        let Some(work) = next else { break };
        let mut request = http::Request::post(path)
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(authorization) = &work.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        let request = request.body(Full::new(work.body))?;
        let started = Instant::now();
        // The connection takes a moment to be ready again after a response.
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status == success {
            latencies.push(started.elapsed());
        } else {
            errors += 1;
        }
    }
    Ok((latencies, errors))
}
