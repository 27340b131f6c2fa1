//! A relying service under load: GETs with a latchkey key over mTLS against any loopback
//! HTTPS server (the library's `analytics_hub`, nginx with `ssl_verify_client`), so that two
//! servers are measured by one client in one sitting.
//!
//! - `Handshakes`: every GET on a new TCP and TLS connection. The client configuration offers
//!   no resumption, so each is a full TLS 1.3 handshake with the client certificate verified
//!   (chain and CRL) by the server; the latency is connect + handshake + GET + answer.
//! - `Requests`: `--concurrency` connections made by the warm-up (before the clock starts),
//!   then GETs one after another on each; a connection that fails is counted as an error and
//!   made again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;

use crate::{Args, cpu_time, loopback, percentile};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Handshakes,
    Requests,
}

/// Where the GETs go, and with which key.
struct Target {
    config: Arc<rustls::ClientConfig>,
    host: String,
    port: u16,
    /// Path and query of the URL.
    path: String,
    /// The Host header.
    authority: String,
}

use crate::connect::Error;

impl Target {
    /// A new TCP and TLS connection, ready for HTTP/1.1 requests.
    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, Error> {
        crate::connect::https(&self.config, &self.host, self.port).await
    }

    /// One GET; an error unless the answer is 200 (its body read to the end).
    async fn get(&self, sender: &mut SendRequest<Empty<Bytes>>) -> Result<(), Error> {
        let request = http::Request::get(self.path.as_str())
            .header(http::header::HOST, self.authority.as_str())
            .body(Empty::new())?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if status != http::StatusCode::OK {
            return Err(format!("answer {status}").into());
        }
        Ok(())
    }
}

/// Measures `--count` GETs after `--warmup`, and prints one JSON line.
pub async fn run(args: &Args, url: &str, mode: Mode) -> Result<(), Box<dyn std::error::Error>> {
    let (host, port) = loopback(url)?;
    let uri: http::Uri = url.parse()?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("{url}: an https URL is needed").into());
    }
    let need = |p: &Option<std::path::PathBuf>, flag: &str| {
        p.clone()
            .ok_or_else(|| format!("--handshakes/--requests need {flag}"))
    };
    let chain = latchkey::tls::load_certificates(
        &std::fs::read(need(&args.client_chain, "--client-chain")?)?,
        "--client-chain",
    )?;
    let key = latchkey::tls::load_private_key(
        &std::fs::read(need(&args.client_key, "--client-key")?)?,
        "--client-key",
    )?;
    let roots = latchkey::tls::load_certificates(
        &std::fs::read(need(&args.trust, "--trust")?)?,
        "--trust",
    )?;
    // The library's client configuration: no session cache, no tickets (resumption
    // disabled), so every connection is a full handshake.
    let config = Arc::new(latchkey::tls::client_config(&roots, Some((chain, key)))?);
    let target = Arc::new(Target {
        config,
        host,
        port,
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        authority: uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
    });
    let concurrency = args.concurrency.max(1);

    // Keep-alive connections are made by the warm-up and kept for the measured run.
    let idle = (0..concurrency).map(|_| None).collect();
    let (_, _, _, connections) = drive(&target, mode, args.warmup, idle).await?;
    let cpu_before = cpu_time(&args.server_pid);
    let started = Instant::now();
    let (mut latencies, errors, first_error, _) =
        drive(&target, mode, args.count, connections).await?;
    let elapsed = started.elapsed();
    let cpu_after = cpu_time(&args.server_pid);
    latencies.sort();
    let ok = latencies.len();
    let rate = ok as f64 / elapsed.as_secs_f64();
    let cpu_per = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if ok > 0 => Some((b - a).as_secs_f64() * 1000.0 / ok as f64),
        _ => None,
    };
    let (mode_name, rate_name, cpu_name) = match mode {
        Mode::Handshakes => (
            "handshakes",
            "handshakes_per_s",
            "server_cpu_ms_per_handshake",
        ),
        Mode::Requests => ("requests", "requests_per_s", "server_cpu_ms_per_request"),
    };
    let mut line = serde_json::json!({
        "tool": "latchkey loadgen",
        "mode": mode_name,
        "target": args.label.clone().unwrap_or_else(|| url.to_owned()),
        "url": url,
        "concurrency": concurrency,
        "requests": args.count,
        "ok": ok,
        "errors": errors,
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
    });
    if let Some(e) = first_error {
        line["first_error"] = e.into();
    }
    line[rate_name] = rate.into();
    line[cpu_name] = cpu_per.into();
    println!("{line}");
    Ok(())
}

type Connection = Option<SendRequest<Empty<Bytes>>>;
/// Latencies, errors, the first error's text, the connections left.
type Driven = (Vec<Duration>, usize, Option<String>, Vec<Connection>);

/// `count` GETs over one worker per entry of `connections` (each made when missing, in
/// `Requests` mode); the latencies of those answered 200, the number of the others, and the
/// connections as they are at the end.
async fn drive(
    target: &Arc<Target>,
    mode: Mode,
    count: usize,
    connections: Vec<Connection>,
) -> Result<Driven, Box<dyn std::error::Error>> {
    let left = Arc::new(AtomicUsize::new(count));
    let take = |left: &AtomicUsize| {
        left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    };
    let mut workers = Vec::new();
    for mut sender in connections {
        let target = target.clone();
        let left = left.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first: Option<String> = None;
            let mut failed = |e: Error| {
                errors += 1;
                first.get_or_insert_with(|| e.to_string());
            };
            match mode {
                Mode::Handshakes => {
                    while take(&left) {
                        let started = Instant::now();
                        let result = async {
                            let mut sender = target.connect().await?;
                            target.get(&mut sender).await
                        }
                        .await;
                        match result {
                            Ok(()) => latencies.push(started.elapsed()),
                            Err(e) => failed(e),
                        }
                    }
                }
                Mode::Requests => {
                    while take(&left) {
                        if sender.is_none() {
                            match target.connect().await {
                                Ok(s) => sender = Some(s),
                                Err(e) => {
                                    failed(e);
                                    continue;
                                }
                            }
                        }
                        let Some(s) = sender.as_mut() else { continue };
                        let started = Instant::now();
                        match target.get(s).await {
                            Ok(()) => latencies.push(started.elapsed()),
                            Err(e) => {
                                failed(e);
                                sender = None;
                            }
                        }
                    }
                }
            }
            (latencies, errors, first, sender)
        }));
    }
    let mut all = Vec::with_capacity(count);
    let mut errors = 0;
    let mut first_error = None;
    let mut kept = Vec::new();
    for w in workers {
        let (l, e, first, sender) = w.await?;
        all.extend(l);
        errors += e;
        first_error = first_error.or(first);
        kept.push(sender);
    }
    Ok((all, errors, first_error, kept))
}
