//! A soak: issuance paced at `--rate` certificates per second across `--concurrency`
//! keep-alive connections for `--duration` seconds, with a JSON line every `--report-every`
//! seconds (requests completed in that interval, errors, p50, p99, how late the pacing ran,
//! and the server's RSS) and a final line for the whole run.
//!
//! Every request needs an enrollment token and a CSR of its own (a public key enrolls one key
//! only), all made before the clock starts: `rate × duration + warmup` of each. The tokens
//! are asked for a thousand at a time (`POST /v1/admin/tokens/batch`) over
//! `--token-concurrency` keep-alive admin connections, while the CSRs are made on the other
//! threads. The time that takes is printed on stderr.
//!
//! Request i is due at start + i / rate; a worker waits for the next due request, sends it
//! and waits for the answer, so the rate holds while the latency stays below
//! `concurrency / rate`. The latency is measured from the send; `max_lag_ms` says how late
//! the latest send was against its due time (large when the server falls behind).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use latchkey::api::NewTokenBatch;
use latchkey::client::{KeyType, new_key_pair};

use crate::{Args, cpu_ms_per, cpu_time, enroll_body, percentile};

use crate::connect::Error;

/// What completed in one interval.
#[derive(Default)]
struct Bucket {
    latencies: Vec<Duration>,
    errors: usize,
    max_lag: Duration,
}

/// The run's shared state.
struct Soak {
    config: Arc<rustls::ClientConfig>,
    host: String,
    port: u16,
    /// Tokens and CSRs left, taken from the end.
    work: Mutex<Vec<(String, String)>>,
    /// The index of the next request to send.
    next: AtomicUsize,
    buckets: Mutex<Vec<Bucket>>,
    every: Duration,
}

/// Resident set size of the processes, in MB (VmRSS from /proc/PID/status).
fn rss_mb(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    let kb: Option<u64> = pids
        .iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum();
    kb.map(|kb| kb as f64 / 1024.0)
}

/// The most tokens one request asks for (the CA's limit).
const TOKEN_BATCH: usize = latchkey::authority::MAX_TOKEN_BATCH as usize;

/// `total` enrollment tokens (owner `soak-<connection>-<batch>@<tenant>`, scope
/// `bench:issue`), asked for in batches of up to [`TOKEN_BATCH`] (`POST
/// /v1/admin/tokens/batch`, one transaction each) over `concurrency` keep-alive connections
/// with the admin certificate.
async fn make_tokens(
    admin: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
    tenant: &str,
    total: usize,
    concurrency: usize,
    ttl_seconds: i64,
) -> Result<Vec<String>, Error> {
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let share = total / concurrency + usize::from(w < total % concurrency);
        let (admin, host, tenant) = (admin.clone(), host.to_owned(), tenant.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut sender = crate::connect::https(&admin, &host, port).await?;
            let mut tokens = Vec::with_capacity(share);
            let mut batch = 0;
            while tokens.len() < share {
                let count = (share - tokens.len()).min(TOKEN_BATCH);
                let body = serde_json::to_vec(&NewTokenBatch {
                    owner: format!("soak-{w}-{batch}@{tenant}").parse()?,
                    scopes: latchkey::model::ScopeSet::parse(["bench:issue"])?,
                    ttl_seconds: Some(ttl_seconds),
                    count: u32::try_from(count)?,
                })?;
                batch += 1;
                let request = http::Request::post("/v1/admin/tokens/batch")
                    .header(http::header::HOST, host.as_str())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))?;
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                if status != http::StatusCode::CREATED {
                    let body = String::from_utf8_lossy(&body);
                    return Err(format!("tokens refused: {status} {body}").into());
                }
                let infos: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
                for info in infos {
                    match info["token"].as_str() {
                        Some(token) => tokens.push(token.to_owned()),
                        None => return Err("a token answer without the token".into()),
                    }
                }
            }
            Ok::<_, Error>(tokens)
        }));
    }
    let mut tokens = Vec::with_capacity(total);
    for t in tasks {
        tokens.extend(t.await??);
    }
    Ok(tokens)
}

/// `total` P-256 CSRs, made on `threads` blocking threads.
async fn make_csrs(total: usize, threads: usize) -> Result<Vec<String>, Error> {
    let mut tasks = Vec::new();
    for t in 0..threads {
        let share = total / threads + usize::from(t < total % threads);
        tasks.push(tokio::task::spawn_blocking(move || {
            (0..share)
                .map(|_| Ok(new_key_pair(KeyType::P256)?.csr_pem))
                .collect::<Result<Vec<_>, Error>>()
        }));
    }
    let mut csrs = Vec::with_capacity(total);
    for t in tasks {
        csrs.extend(t.await??);
    }
    Ok(csrs)
}

impl Soak {
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Error> {
        crate::connect::https(&self.config, &self.host, self.port).await
    }

    /// One enrollment; an error unless it is answered 201.
    async fn enroll(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        token: &str,
        csr: String,
    ) -> Result<(), Error> {
        let request = http::Request::post("/v1/keys")
            .header(http::header::HOST, self.host.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(enroll_body(csr)))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status != http::StatusCode::CREATED {
            return Err(format!("answer {status}").into());
        }
        Ok(())
    }

    /// One connection's worker: sends requests `0..limit` as they fall due (at once when
    /// `pace` is None); with `pace`, files each outcome in the bucket of its completion.
    async fn work(self: Arc<Self>, limit: usize, pace: Option<(Instant, f64)>) {
        let mut sender = None;
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= limit {
                break;
            }
            let due = pace.map(|(start, rate)| start + Duration::from_secs_f64(i as f64 / rate));
            if let Some(due) = due {
                tokio::time::sleep_until(due.into()).await;
            }
            let Some((token, csr)) = self.work.lock().ok().and_then(|mut w| w.pop()) else {
                break;
            };
            let sent = Instant::now();
            let result = async {
                if sender.is_none() {
                    sender = Some(self.connect().await?);
                }
                match sender.as_mut() {
                    Some(s) => self.enroll(s, &token, csr).await,
                    None => Ok(()),
                }
            }
            .await;
            let done = Instant::now();
            if result.is_err() {
                // A refused request leaves the connection usable; a broken one does not.
                sender = sender.filter(|s| !s.is_closed());
            }
            let Some((start, _)) = pace else { continue };
            if let Ok(mut buckets) = self.buckets.lock() {
                let last = buckets.len() - 1;
                let index = ((done - start).as_secs_f64() / self.every.as_secs_f64()) as usize;
                let bucket = &mut buckets[index.min(last)];
                match result {
                    Ok(()) => bucket.latencies.push(done - sent),
                    Err(_) => bucket.errors += 1,
                }
                let lag = due.map_or(Duration::ZERO, |d| sent.saturating_duration_since(d));
                bucket.max_lag = bucket.max_lag.max(lag);
            }
        }
    }

    /// The JSON line of one interval, and its latencies for the total.
    fn report(&self, index: usize, pids: &[u32]) -> Bucket {
        let mut bucket = self
            .buckets
            .lock()
            .map(|mut b| std::mem::take(&mut b[index]))
            .unwrap_or_default();
        bucket.latencies.sort();
        let ok = bucket.latencies.len();
        println!(
            "{}",
            serde_json::json!({
                "tool": "latchkey loadgen",
                "soak": "interval",
                "minute": index,
                "seconds": self.every.as_secs(),
                "count": ok + bucket.errors,
                "ok": ok,
                "errors": bucket.errors,
                "certs_per_s": ok as f64 / self.every.as_secs_f64(),
                "p50_ms": percentile(&bucket.latencies, 50.0),
                "p99_ms": percentile(&bucket.latencies, 99.0),
                "max_lag_ms": bucket.max_lag.as_secs_f64() * 1000.0,
                "rss_mb": rss_mb(pids),
            })
        );
        bucket
    }
}

/// Prepares, warms up, then issues at `rate` per second for `duration` seconds.
pub async fn run(
    args: &Args,
    ca_pem: &[u8],
    host: &str,
    port: u16,
    rate: f64,
    duration: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    if rate.is_nan() || rate <= 0.0 || duration == 0 || args.report_every == 0 {
        return Err("--rate, --duration and --report-every must be above zero".into());
    }
    let paced = (rate * duration as f64).ceil() as usize;
    let total = paced + args.warmup;
    eprintln!(
        "{}",
        serde_json::json!({ "soak": "preparing", "tokens_and_csrs": total,
            "token_concurrency": args.token_concurrency })
    );
    let prepare_started = Instant::now();
    let roots = latchkey::tls::load_certificates(ca_pem, "ca.pem")?;
    let admin_dir = args.home.join("admin");
    let identity = (
        latchkey::tls::load_certificates(&std::fs::read(admin_dir.join("chain.pem"))?, "chain")?,
        latchkey::tls::load_private_key(&std::fs::read(admin_dir.join("key.pem"))?, "key")?,
    );
    let admin = Arc::new(latchkey::tls::client_config(&roots, Some(identity))?);
    // Valid through the preparation and the run, whatever their length (at most 30 days).
    let ttl = (duration as i64 + 86_400).min(30 * 86_400);
    let csr_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (tokens, csrs) = tokio::try_join!(
        make_tokens(
            admin,
            host,
            port,
            &args.tenant,
            total,
            args.token_concurrency.max(1),
            ttl
        ),
        make_csrs(total, csr_threads),
    )
    .map_err(|e| e.to_string())?;
    let work: Vec<(String, String)> = tokens.into_iter().zip(csrs).collect();
    let seconds = prepare_started.elapsed().as_secs_f64();
    eprintln!(
        "{}",
        serde_json::json!({ "soak": "prepared", "tokens_and_csrs": total, "seconds": seconds,
            "per_s": total as f64 / seconds })
    );

    let intervals = duration.div_ceil(args.report_every) as usize;
    let soak = Arc::new(Soak {
        config: Arc::new(latchkey::tls::client_config(&roots, None)?),
        host: host.to_owned(),
        port,
        work: Mutex::new(work),
        next: AtomicUsize::new(0),
        buckets: Mutex::new((0..intervals).map(|_| Bucket::default()).collect()),
        every: Duration::from_secs(args.report_every),
    });
    let concurrency = args.concurrency.max(1);

    // Warm-up, unpaced and not counted.
    let warm: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(soak.clone().work(args.warmup, None)))
        .collect();
    for w in warm {
        w.await?;
    }

    soak.next.store(0, Ordering::Relaxed);
    let pids = args.server_pid.clone();
    let cpu_before = cpu_time(&pids);
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(soak.clone().work(paced, Some((start, rate)))))
        .collect();
    let mut all = Vec::with_capacity(paced);
    let mut errors = 0;
    let mut first_rss = None;
    for index in 0..intervals - 1 {
        tokio::time::sleep_until((start + soak.every * (index as u32 + 1)).into()).await;
        let bucket = soak.report(index, &pids);
        first_rss = first_rss.or(Some(rss_mb(&pids)));
        all.extend(bucket.latencies);
        errors += bucket.errors;
    }
    for w in workers {
        w.await?;
    }
    let elapsed = start.elapsed();
    let cpu_after = cpu_time(&pids);
    let bucket = soak.report(intervals - 1, &pids);
    all.extend(bucket.latencies);
    errors += bucket.errors;
    all.sort();
    let ok = all.len();
    println!(
        "{}",
        serde_json::json!({
            "tool": "latchkey loadgen",
            "soak": "total",
            "rate": rate,
            "duration_s": duration,
            "concurrency": concurrency,
            "requests": paced,
            "ok": ok,
            "errors": errors,
            "seconds": elapsed.as_secs_f64(),
            "certs_per_s": ok as f64 / elapsed.as_secs_f64(),
            "p50_ms": percentile(&all, 50.0),
            "p99_ms": percentile(&all, 99.0),
            "rss_mb_after_first": first_rss.flatten(),
            "rss_mb_end": rss_mb(&pids),
            "server_cpu_ms_per_cert": cpu_ms_per(cpu_before, cpu_after, ok),
            "preparation_s": seconds,
        })
    );
    Ok(())
}
