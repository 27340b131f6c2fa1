//! `latchkey init` and `latchkey serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use latchkey::authority::Policy;
use latchkey::ca::ServiceCertificate;
use latchkey::clock::SystemClock;
use latchkey::home::{Home, InitOptions};
use latchkey::http::EdgeLimits;
use latchkey::profile::DEFAULT_TRUST_DOMAIN;
use latchkey::server::{ServeOptions, Server};
use latchkey::tls::ListenerLimits;

use super::{Args, parse_duration};

/// Durations, comma-separated (`14d,3d,1d`); empty for none.
#[derive(Debug, Clone)]
struct Spans(Vec<latchkey::model::Span>);

fn parse_spans(s: &str) -> Result<Spans, latchkey::model::SpanError> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map(Spans)
}

/// Options that shape a new CA.
#[derive(Debug, Parser)]
pub struct InitArgs {
    /// The SPIFFE trust domain in every key's URI (fixed at initialization).
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Extra names (DNS or IP) for the CA's server certificate; localhost, 127.0.0.1 and ::1
    /// are always included.
    #[arg(long = "hostname")]
    hostnames: Vec<String>,
    /// The URL relying parties reach the CA at (for the CRL distribution point).
    #[arg(long)]
    public_url: Option<String>,
    /// The base URL CRL distribution points name (default: the public URL, or with
    /// --crl-http-listen that listener's http:// URL): `<URL>/v1/crl` in key certificates,
    /// `<URL>/v1/crl/root` in the intermediate. Fixed at initialization.
    #[arg(long)]
    crl_url: Option<String>,
    /// The database (default: SQLite in <home>/latchkey.db).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database_url: Option<String>,
    /// Encrypt the root and intermediate keys at rest (PKCS#8: PBKDF2-SHA256, AES-256) under a
    /// passphrase from --passphrase-file or a prompt; every later start needs it.
    #[arg(long)]
    encrypt_keys: bool,
    /// Make the intermediate's key inside a PKCS#11 token (an HSM) through this module; it
    /// never exists in a file. Needs --pkcs11-token and the token's PIN (--pkcs11-pin-file).
    #[arg(long, requires = "pkcs11_token")]
    pkcs11_module: Option<PathBuf>,
    /// The label of the PKCS#11 token to make the key in.
    #[arg(long, requires = "pkcs11_module")]
    pkcs11_token: Option<String>,
    /// The label of the key made in the token.
    #[arg(long, default_value = "latchkey-intermediate")]
    pkcs11_key_label: String,
}

/// Options of a running CA.
#[derive(Debug, Parser)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// How long each certificate lives (e.g. 24h); never beyond its key.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    certificate_lifetime: i64,
    /// How far ahead each CRL's nextUpdate lies (e.g. 1h); a new CRL is built after every
    /// revocation and when half of this has passed.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    crl_validity: i64,
    /// Connections held at once, all clients together (default: what the file-descriptor
    /// limit leaves room for, at most 10000); past it new connections are closed at once.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Connections held at once per client network (an IPv4 address or an IPv6 /64; 0: no
    /// limit).
    #[arg(long, default_value_t = latchkey::tls::DEFAULT_MAX_CONNECTIONS_PER_SOURCE)]
    max_connections_per_source: usize,
    /// CRL long polls held at once per client network (0: no limit); past it, 503 busy.
    #[arg(long, default_value_t = latchkey::http::DEFAULT_LONG_POLLS_PER_SOURCE)]
    max_long_polls_per_source: usize,
    /// A TCP load balancer in front sends a PROXY protocol v2 header on every connection;
    /// take the client's address from it (for throttling and per-client limits). Only with
    /// a balancer that always sends one: clients reaching the CA directly are refused.
    #[arg(long)]
    proxy_protocol: bool,
    /// Addresses or networks (CIDR, comma-separated) that may read /metrics without the
    /// admin certificate, such as a Prometheus server; default none.
    #[arg(long, env = "LATCHKEY_METRICS_ALLOW", value_delimiter = ',')]
    metrics_allow: Vec<latchkey::model::IpNet>,
    /// The shortest time between two certificates of one key (e.g. 1h; default a 24th of
    /// --certificate-lifetime); an earlier renewal is answered 429 with Retry-After.
    #[arg(long, value_parser = parse_duration)]
    renew_interval: Option<i64>,
    /// How many unexpired certificates a key keeps (at least 2); a renewal beyond that
    /// revokes the oldest as superseded.
    #[arg(long, default_value_t = 3)]
    certificates_per_key: i64,
    /// How far ahead the root CRL's nextUpdate lies (e.g. 30d); with the root key in the
    /// home, a new one is signed when half of this has passed.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    root_crl_validity: i64,
    /// Make the next issuing intermediate when the active one has less than this left
    /// (needs the root key in the home; a replica without it says so in its log). Units as
    /// for --crl-validity.
    #[arg(long, default_value = "365d", value_parser = parse_duration, env = "LATCHKEY_ROTATE_BEFORE")]
    rotate_before: i64,
    /// When to send key.expiring to webhooks: lead times before a key's end, comma-separated
    /// (e.g. 14d,3d,1d; empty: never).
    #[arg(long, default_value = "14d,3d,1d", value_parser = parse_spans)]
    expiry_notice: Spans,
    /// The PEM bundle of roots that https webhook receivers' certificates must chain to.
    #[arg(long, env = "LATCHKEY_WEBHOOK_ROOTS", default_value = latchkey::server::SYSTEM_ROOTS)]
    webhook_roots: PathBuf,
    /// Also serve the CRLs (and nothing else) over plain HTTP on this address, for relying
    /// parties that download CRLs themselves; a new CA names it in its distribution points.
    #[arg(long, env = "LATCHKEY_CRL_HTTP_LISTEN")]
    crl_http_listen: Option<SocketAddr>,
    #[command(flatten)]
    init: InitArgs,
}

impl InitArgs {
    /// The options for a CA that will listen on `port` (for the default public URL).
    fn options(&self, port: u16) -> InitOptions {
        let port = if port == 0 { 8443 } else { port };
        let host = self.hostnames.first().map_or("localhost", String::as_str);
        InitOptions {
            trust_domain: self.trust_domain.clone(),
            hostnames: self.hostnames.clone(),
            public_url: Some(
                self.public_url
                    .clone()
                    .unwrap_or_else(|| format!("https://{host}:{port}")),
            ),
            crl_url: self.crl_url.clone(),
            encrypt_keys: self.encrypt_keys,
            pkcs11: self.pkcs11_location(),
        }
    }
}

impl InitArgs {
    /// Where the intermediate's key is to be made, when in a token.
    fn pkcs11_location(&self) -> Option<latchkey::ca::Pkcs11Location> {
        Some(latchkey::ca::Pkcs11Location {
            module: self.pkcs11_module.clone()?,
            token: self.pkcs11_token.clone()?,
            key_label: self.pkcs11_key_label.clone(),
        })
    }
}

/// `latchkey init`.
pub async fn init(args: &Args, init: &InitArgs) -> Result<()> {
    let home = args.ca_home(init.encrypt_keys, init.pkcs11_module.is_some())?;
    if home.is_initialized() {
        anyhow::bail!(
            "a CA already exists in {}; refusing to overwrite it",
            args.home.display()
        );
    }
    latchkey::server::prepare(
        &home,
        init.database_url.as_deref(),
        &init.options(8443),
        Policy::default(),
        Arc::new(SystemClock),
    )
    .await?;
    println!("latchkey: new CA in {}", args.home.display());
    println!("  clients trust:      {}", home.ca_cert().display());
    println!("  admin certificate:  {}/", home.admin_dir().display());
    println!("  next:               latchkey serve");
    Ok(())
}

/// The authority of the existing CA in `home`, for a command run beside (or instead of) the
/// server: opens the store and issues whatever of the CA's own certificates is due, as a
/// start would.
pub async fn open_existing(
    home: &Home,
    database_url: Option<&str>,
) -> Result<latchkey::server::Prepared> {
    let prepared = latchkey::server::prepare(
        home,
        database_url,
        // The home exists: nothing of these options is used but the (absent) extra names.
        &InitOptions {
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            hostnames: Vec::new(),
            public_url: None,
            crl_url: None,
            encrypt_keys: false,
            pkcs11: None,
        },
        Policy::default(),
        Arc::new(SystemClock),
    )
    .await?;
    Ok(prepared)
}

/// `latchkey rotate-admin`: a new admin certificate in `<home>/admin/`; every earlier one
/// is revoked as it is recorded. Runs on the CA host, next to a running CA or not.
pub async fn rotate_admin(args: &Args, rotate: &RotateAdminArgs) -> Result<()> {
    let home = args.ca_home(false, false)?;
    if !home.is_initialized() {
        anyhow::bail!("no CA in {}", args.home.display());
    }
    let unfinished =
        "earlier admin certificates are NOT revoked yet; run `latchkey rotate-admin` again";
    let authority = open_existing(&home, rotate.database_url.as_deref())
        .await
        .context(unfinished)?
        .authority;
    // Issued and recorded first, written second, and only then are the earlier ones revoked:
    // the administrator is never left without a working certificate.
    let wanted = ServiceCertificate::Admin {
        name: latchkey::home::ADMIN_NAME.parse()?,
    };
    let issued = authority
        .issue_service_certificate(&wanted)
        .await
        .context(unfinished)?;
    let admin = &issued.certificate;
    home.write_service_certificate(&wanted, admin, &issued.chain_pem, &issued.key_pem)
        .context(unfinished)?;
    let revoked = authority
        .rotate_admin_certificate(admin)
        .await
        .context(unfinished)?;
    authority.close().await;
    println!(
        "latchkey: new admin certificate in {}/ (serial {}); every earlier one is revoked ({revoked})",
        home.admin_dir().display(),
        admin.serial
    );
    Ok(())
}

/// Options of `latchkey rotate-admin`.
#[derive(Debug, Parser)]
pub struct RotateAdminArgs {
    /// The database (default: SQLite in <home>/latchkey.db).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database_url: Option<String>,
}

/// `latchkey serve`.
pub async fn serve(args: &Args, serve: &ServeArgs) -> Result<()> {
    if serve.certificate_lifetime <= 0 {
        anyhow::bail!("--certificate-lifetime must be positive");
    }
    if serve.crl_validity < 60 {
        anyhow::bail!("--crl-validity must be at least 60s");
    }
    if serve.root_crl_validity < 60 {
        anyhow::bail!("--root-crl-validity must be at least 60s");
    }
    if serve.rotate_before <= 0
        || time::Duration::seconds(serve.rotate_before) >= latchkey::ca::INTERMEDIATE_LIFETIME
    {
        // A new intermediate would be due at once, and rotated every minute.
        anyhow::bail!(
            "--rotate-before must be positive and shorter than an intermediate's life ({} days)",
            latchkey::ca::INTERMEDIATE_LIFETIME.whole_days()
        );
    }
    if serve.certificates_per_key < 2 {
        // With 1, a renewal would revoke the certificate that asked for it, and an answer
        // lost on the way would leave the holder with no working certificate.
        anyhow::bail!("--certificates-per-key must be at least 2");
    }
    let policy = Policy {
        certificate_lifetime: time::Duration::seconds(serve.certificate_lifetime),
        crl_validity: time::Duration::seconds(serve.crl_validity),
        metrics_allow: serve.metrics_allow.clone().leak(),
        renew_interval: time::Duration::seconds(
            serve
                .renew_interval
                .unwrap_or(serve.certificate_lifetime / 24),
        ),
        certificates_per_key: serve.certificates_per_key,
        root_crl_validity: time::Duration::seconds(serve.root_crl_validity),
        ..Policy::default()
    };
    let existing = Home::new(&args.home);
    if serve.init.encrypt_keys && existing.is_initialized() && !existing.keys_encrypted() {
        anyhow::bail!(
            "--encrypt-keys applies to a new CA; encrypt this one's keys with `latchkey ca encrypt-keys`"
        );
    }
    let new = !existing.is_initialized();
    let home = args.ca_home(
        serve.init.encrypt_keys && new,
        serve.init.pkcs11_module.is_some() && new,
    )?;
    let server = Server::start(ServeOptions {
        home,
        listen: serve.listen,
        database_url: serve.init.database_url.clone(),
        // The default public URL names the port actually bound (known once bound).
        init: InitOptions {
            public_url: serve.init.public_url.clone(),
            ..serve.init.options(serve.listen.port())
        },
        policy,
        max_connections: serve.max_connections,
        listener: ListenerLimits {
            max_connections_per_source: serve.max_connections_per_source,
            proxy_protocol: serve.proxy_protocol,
            ..ListenerLimits::default()
        },
        edge: EdgeLimits {
            long_polls_per_source: serve.max_long_polls_per_source,
        },
        crl_http_listen: serve.crl_http_listen,
        rotate_before: time::Duration::seconds(serve.rotate_before),
        webhooks: latchkey::server::WebhookSettings {
            expiry_notice: serve.expiry_notice.0.clone(),
            roots: serve.webhook_roots.clone(),
        },
        clock: Arc::new(SystemClock),
    })
    .await?;
    let addr = server.local_addr()?;
    let home = &server.home;
    let url = format!("https://{addr}");
    warn_if_public_url_points_elsewhere(&home.settings()?.public_url, addr);
    let server_flag = if url == latchkey::client::DEFAULT_SERVER {
        String::new()
    } else {
        format!(" --server {url}")
    };
    let home_flag = if args.home.as_os_str() == "certs" {
        String::new()
    } else {
        format!(" --home {}", args.home.display())
    };
    if server.initialized_now {
        println!("latchkey: initialized a new CA in {}", home.dir().display());
    }
    println!("latchkey: listening on {url}");
    if let Some(crl) = server.crl_http_addr() {
        println!("  CRLs over HTTP:     http://{crl}/v1/crl, /v1/crl/root, /v1/crl/bundle.pem");
    }
    println!(
        "  connections:        up to {} at once, {} per client network (file-descriptor limit {}){}",
        server.limits().max_connections,
        server.limits().max_connections_per_source,
        server.fd_limit,
        if server.limits().proxy_protocol {
            "; client addresses from PROXY headers"
        } else {
            ""
        }
    );
    println!("  clients trust:      {}", home.ca_cert().display());
    println!("  admin certificate:  {}/", home.admin_dir().display());
    println!("  next:               latchkey{server_flag}{home_flag} tenant add acme");
    println!(
        "                      latchkey{server_flag}{home_flag} user add alice@acme --scopes read:metrics,write:events"
    );
    println!(
        "                      latchkey{server_flag} --ca-cert {} enroll --user alice@acme --scopes read:metrics --name laptop --out alice/",
        home.ca_cert().display()
    );
    server.run(shutdown_signal()).await;
    Ok(())
}

/// Every certificate names `<public URL>/v1/crl`. A public URL on this machine but another
/// port (a CA made by `latchkey init`, then served elsewhere) sends relying parties to a
/// port this CA does not own: say so at every start rather than let CRL fetches fail far
/// away.
fn warn_if_public_url_points_elsewhere(public_url: &str, listening: SocketAddr) {
    let Ok(uri) = public_url.parse::<http::Uri>() else {
        return;
    };
    let local = matches!(uri.host(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let port = uri.port_u16().unwrap_or(443);
    if local && port != listening.port() {
        println!(
            "latchkey: warning: certificates name the CRL at {}/v1/crl, but this CA listens \
             on port {}; relying parties that fetch it will reach another port",
            public_url.trim_end_matches('/'),
            listening.port()
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
