//! `latchkey crl sign-root` (where the root key is) and `latchkey crl sync` (on hosts whose
//! proxy checks client certificates against a CRL file).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use latchkey::client::Client;
use latchkey::tls::RevocationSet;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use super::{Args, parse_duration};

/// `latchkey crl …`.
#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Sign a root CRL with the root key (where it is kept), into a file or the store.
    SignRoot(SignRootArgs),
    /// Store a root CRL signed elsewhere (`sign-root --out`), after checking its signature.
    ImportRoot(ImportRootArgs),
    /// Keep a CRL file current for a proxy (nginx `ssl_crl`, HAProxy `crl-file`).
    Sync(SyncArgs),
}

/// Options of `latchkey crl sign-root`.
#[derive(Debug, Parser)]
pub struct SignRootArgs {
    /// The root's private key (default: <home>/root-key.pem).
    #[arg(long)]
    root_key: Option<PathBuf>,
    /// How long the CRL is valid: sign the next one well before this passes.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    validity: i64,
    /// Write the CRL (PEM) here instead of storing it; `latchkey crl import-root` stores it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The CA's database (default: SQLite in <home>/latchkey.db).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database_url: Option<String>,
}

/// Options of `latchkey crl import-root`.
#[derive(Debug, Parser)]
pub struct ImportRootArgs {
    /// The CRL (PEM or DER).
    file: PathBuf,
    /// The CA's database (default: SQLite in <home>/latchkey.db).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database_url: Option<String>,
}

/// Options of `latchkey crl sync`.
#[derive(Debug, Parser)]
pub struct SyncArgs {
    /// The file to keep current (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Write the intermediate's and the root's CRL (what `-crl_check_all`-style checking of
    /// the whole chain needs); default the intermediate's alone.
    #[arg(long)]
    bundle: bool,
    /// Write DER instead of PEM (one CRL only: not with --bundle).
    #[arg(long, conflicts_with = "bundle")]
    der: bool,
    /// A shell command run after the file changed (e.g. 'nginx -s reload').
    #[arg(long)]
    on_change: Option<String>,
    /// HAProxy's admin socket: swap the CRL in live through its runtime API, no reload.
    #[arg(long)]
    haproxy_socket: Option<PathBuf>,
    /// The `crl-file` path as HAProxy's configuration names it (default: --out).
    #[arg(long)]
    haproxy_crl_file: Option<PathBuf>,
    /// Fetch once, write, and exit (non-zero when it could not): for cron and tests.
    #[arg(long)]
    once: bool,
    /// Exit non-zero once the file has gone this long without a successful refresh (e.g.
    /// 30m); default: keep retrying.
    #[arg(long, value_parser = parse_duration)]
    max_stale: Option<i64>,
}

/// `latchkey crl …`.
pub async fn crl(args: &Args, command: &CrlCommand) -> Result<()> {
    match command {
        CrlCommand::SignRoot(sign) => sign_root(args, sign).await,
        CrlCommand::ImportRoot(import) => import_root(args, import).await,
        CrlCommand::Sync(sync) => self::sync(args, sync).await,
    }
}

fn root_certificate(args: &Args) -> Result<CertificateDer<'static>> {
    let pem = Args::read(&args.ca_cert_path(), "the root certificate")?;
    Ok(latchkey::tls::load_certificates(&pem, "ca.pem")?.remove(0))
}

async fn open_store(args: &Args, database_url: Option<&str>) -> Result<latchkey::store::Store> {
    let url = database_url.map(str::to_owned).unwrap_or_else(|| {
        latchkey::store::sqlite_url(&latchkey::home::Home::new(&args.home).database())
    });
    latchkey::store::Store::connect(&url)
        .await
        .with_context(|| "cannot open the CA's database")
}

async fn sign_root(args: &Args, sign: &SignRootArgs) -> Result<()> {
    if sign.validity < 60 {
        bail!("--validity must be at least 60s");
    }
    let root = root_certificate(args)?;
    let key_path = sign
        .root_key
        .clone()
        .unwrap_or_else(|| args.home.join("root-key.pem"));
    let key = String::from_utf8(Args::read(&key_path, "the root key")?)
        .context("the root key is not PEM")?;
    let passphrase = args.ca_passphrase(latchkey::home::key_file::is_encrypted(&key), false)?;
    let key = latchkey::home::key_file::open(&key_path, &key, passphrase.as_ref())?;
    let signer = latchkey::ca::RootSigner::new(&root, &key)?;
    let now = OffsetDateTime::now_utc();
    let validity = time::Duration::seconds(sign.validity);
    if let Some(out) = &sign.out {
        let row = latchkey::publisher::sign_root_crl(&signer, now, validity, 0)?;
        latchkey::files::replace(
            out,
            latchkey::pem::encode("X509 CRL", &row.der).as_bytes(),
            false,
        )?;
        println!(
            "latchkey: root CRL {} written to {} (valid until {}); store it with `latchkey crl import-root`",
            row.number,
            out.display(),
            super::when(row.next_update)
        );
        return Ok(());
    }
    let ledger = open_store(args, sign.database_url.as_deref())
        .await?
        .revocation_ledger();
    let after = latchkey::publisher::newest_root_crl_number(&ledger, &root, now).await?;
    let row = latchkey::publisher::sign_root_crl(&signer, now, validity, after)?;
    let number = latchkey::publisher::store_root_crl(&ledger, &root, &row.der, now).await?;
    println!(
        "latchkey: root CRL {number} stored (valid until {}); the CA serves it within seconds",
        super::when(row.next_update)
    );
    Ok(())
}

async fn import_root(args: &Args, import: &ImportRootArgs) -> Result<()> {
    let root = root_certificate(args)?;
    let bytes = Args::read(&import.file, "the CRL")?;
    let der = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(&bytes)
        .map(|c| c.to_vec())
        .unwrap_or(bytes);
    let ledger = open_store(args, import.database_url.as_deref())
        .await?
        .revocation_ledger();
    let now = OffsetDateTime::now_utc();
    let number = latchkey::publisher::store_root_crl(&ledger, &root, &der, now).await?;
    println!("latchkey: root CRL {number} stored; the CA serves it within seconds");
    Ok(())
}

/// The CRLs as last fetched and verified.
struct Fetched {
    intermediate: (i64, Vec<u8>),
    root: (i64, Vec<u8>),
    /// The earliest nextUpdate of the two.
    next_update: OffsetDateTime,
}

/// The sync daemon's state between rounds.
struct Syncer<'a> {
    args: &'a SyncArgs,
    client: Client,
    root: CertificateDer<'static>,
    /// The intermediates the root signed, as the CA names them.
    intermediates: Vec<CertificateDer<'static>>,
    number: Option<i64>,
    root_crl: Option<(i64, Vec<u8>)>,
}

impl Syncer<'_> {
    /// Reads the chain from the CA, keeping only certificates the trusted root signed.
    async fn load_chain(&mut self) -> Result<()> {
        let chain = self.client.ca_chain().await?;
        let (_, root) = x509_parser::parse_x509_certificate(&self.root)?;
        self.intermediates = chain
            .into_iter()
            .filter(|c| {
                x509_parser::parse_x509_certificate(c).is_ok_and(|(_, cert)| {
                    cert.issuer() == root.subject()
                        && cert.subject() != root.subject()
                        && cert.verify_signature(Some(root.public_key())).is_ok()
                })
            })
            .collect();
        if self.intermediates.is_empty() {
            bail!("the CA names no intermediate signed by the trusted root");
        }
        Ok(())
    }

    /// One round: the intermediate's CRL (long-polling for a newer one when one is held),
    /// and the root's; both verified. `None` when nothing changed.
    async fn fetch(&mut self, wait: u64) -> Result<Option<Fetched>> {
        if self.intermediates.is_empty() {
            self.load_chain().await?;
        }
        let Some((number, der)) = self.client.crl(self.number, wait).await? else {
            return Ok(None);
        };
        let set = match self.verify_intermediate(&der) {
            Ok(set) => set,
            Err(_) => {
                // Perhaps a new intermediate: read the chain again, once.
                self.load_chain().await?;
                self.verify_intermediate(&der)?
            }
        };
        let root_crl = self.client.root_crl().await?;
        let root_set = RevocationSet::from_crl(&root_crl.1, &self.root)
            .context("the root CRL does not verify against --ca-cert")?;
        self.number = Some(number);
        self.root_crl = Some(root_crl.clone());
        Ok(Some(Fetched {
            intermediate: (set.number(), der),
            root: root_crl,
            next_update: set.next_update().min(root_set.next_update()),
        }))
    }

    fn verify_intermediate(&self, der: &[u8]) -> Result<RevocationSet> {
        let mut last = None;
        for intermediate in &self.intermediates {
            match RevocationSet::from_crl(der, intermediate) {
                Ok(set) => return Ok(set),
                Err(e) => last = Some(e),
            }
        }
        Err(anyhow::anyhow!(
            "the CRL does not verify against the CA chain: {}",
            last.map_or("no intermediate".into(), |e| e.to_string())
        ))
    }

    /// What the file holds for these CRLs.
    fn content(&self, fetched: &Fetched) -> Vec<u8> {
        let pem = |der: &[u8]| latchkey::pem::encode("X509 CRL", der).into_bytes();
        if self.args.der {
            fetched.intermediate.1.clone()
        } else if self.args.bundle {
            let mut both = pem(&fetched.intermediate.1);
            both.extend(pem(&fetched.root.1));
            both
        } else {
            pem(&fetched.intermediate.1)
        }
    }

    /// Writes the file if it changed, then tells HAProxy and runs the hook. True when it
    /// changed.
    async fn write(&self, fetched: &Fetched) -> Result<bool> {
        let content = self.content(fetched);
        if std::fs::read(&self.args.out).is_ok_and(|old| old == content) {
            return Ok(false);
        }
        latchkey::files::replace(&self.args.out, &content, false)
            .with_context(|| format!("cannot write {}", self.args.out.display()))?;
        tracing::info!(
            number = fetched.intermediate.0,
            root_number = fetched.root.0,
            file = %self.args.out.display(),
            "CRL file updated"
        );
        if let Some(socket) = &self.args.haproxy_socket {
            let path = self
                .args
                .haproxy_crl_file
                .as_ref()
                .unwrap_or(&self.args.out);
            let pem = String::from_utf8_lossy(&self.content_pem(fetched)).into_owned();
            haproxy_swap(socket, path, &pem).await?;
            tracing::info!(socket = %socket.display(), "HAProxy CRL swapped in");
        }
        if let Some(hook) = &self.args.on_change {
            let command = hook.clone();
            let status = tokio::task::spawn_blocking(move || {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .status()
            })
            .await?
            .with_context(|| format!("cannot run {hook:?}"))?;
            if !status.success() {
                tracing::error!(hook, %status, "the --on-change command failed");
            }
        }
        Ok(true)
    }

    /// HAProxy takes PEM whatever the file holds.
    fn content_pem(&self, fetched: &Fetched) -> Vec<u8> {
        if self.args.der {
            latchkey::pem::encode("X509 CRL", &fetched.intermediate.1).into_bytes()
        } else {
            self.content(fetched)
        }
    }
}

/// Replaces the CRL file HAProxy loaded from `path` through its runtime API: a transaction
/// with the new contents, then its commit; handshakes use it from the commit on.
async fn haproxy_swap(socket: &Path, path: &Path, pem: &str) -> Result<()> {
    let set = format!(
        "set ssl crl-file {} <<\n{}\n\n",
        path.display(),
        pem.trim_end()
    );
    let answer = haproxy_command(socket, &set).await?;
    if !answer.contains("transaction created") && !answer.contains("transaction updated") {
        bail!("HAProxy refused the new CRL: {}", answer.trim());
    }
    let answer =
        haproxy_command(socket, &format!("commit ssl crl-file {}\n", path.display())).await?;
    if !answer.contains("Success") {
        bail!("HAProxy did not commit the new CRL: {}", answer.trim());
    }
    Ok(())
}

/// One command on HAProxy's admin socket (which answers and closes); a command with a
/// payload ends with an empty line.
async fn haproxy_command(socket: &Path, command: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot reach HAProxy at {}", socket.display()))?;
    // One write: HAProxy runs a command at its end of line and closes the connection.
    stream.write_all(command.as_bytes()).await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .context("HAProxy did not answer")??;
    Ok(answer)
}

/// The longest wait between attempts while the CA cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

async fn sync(args: &Args, sync: &SyncArgs) -> Result<()> {
    let ca = Args::read(&args.ca_cert_path(), "the CA certificate")?;
    let root = latchkey::tls::load_certificates(&ca, "--ca-cert")?.remove(0);
    let mut syncer = Syncer {
        args: sync,
        client: Client::new(&args.server, &ca, None)?,
        root,
        intermediates: Vec::new(),
        number: None,
        root_crl: None,
    };
    if sync.once {
        let fetched = syncer.fetch(0).await;
        return match fetched {
            Ok(Some(fetched)) => {
                syncer.write(&fetched).await?;
                warn_if_near(fetched.next_update);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, file = %sync.out.display(),
                    "CANNOT REFRESH THE CRL FILE: the last good one is kept");
                Err(e.context(format!(
                    "the CRL file {} was not refreshed; the last good one is kept",
                    sync.out.display()
                )))
            }
        };
    }
    let mut last_good = Instant::now();
    let mut next_update: Option<OffsetDateTime> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = if syncer.number.is_some() { 60 } else { 0 };
        match syncer.fetch(wait).await {
            Ok(fetched) => {
                last_good = Instant::now();
                backoff = Duration::from_secs(1);
                if let Some(fetched) = fetched {
                    if let Err(e) = syncer.write(&fetched).await {
                        tracing::error!(error = %e, "cannot install the new CRL");
                        // Try again with the same CRL next round.
                        syncer.number = None;
                        tokio::time::sleep(backoff).await;
                    }
                    next_update = Some(fetched.next_update);
                }
                // The root CRL is re-fetched on each round: it is small and changes rarely.
            }
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?backoff, file = %sync.out.display(),
                    "CANNOT REFRESH THE CRL FILE: the last good one is kept");
                if let Some(next) = next_update {
                    warn_if_near(next);
                }
                if let Some(max) = sync.max_stale
                    && last_good.elapsed() >= Duration::from_secs(max.max(0) as u64)
                {
                    bail!(
                        "the CRL file {} has not been refreshed for {:?} (--max-stale)",
                        sync.out.display(),
                        last_good.elapsed()
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Says loudly when the CRLs on disk are near (or past) their nextUpdate: past it, the proxy
/// refuses every client certificate.
fn warn_if_near(next_update: OffsetDateTime) {
    let left = next_update - OffsetDateTime::now_utc();
    if left <= time::Duration::ZERO {
        tracing::error!(%next_update, "THE CRL FILE IS PAST ITS nextUpdate: proxies refuse every key");
    } else if left <= time::Duration::minutes(15) {
        tracing::warn!(%next_update, "the CRL file nears its nextUpdate");
    }
}
