//! `latchkey crl sign-root` (where the root key is) and `latchkey crl sync` (on hosts whose
//! proxy checks client certificates against a CRL file).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use latchkey::api::{IssuerList, IssuerStatus};
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
    /// Write every issuing intermediate's CRL and the root's (what `-crl_check_all`-style
    /// checking of the whole chain needs); default every issuing intermediate's alone (one,
    /// or several after a rotation: each CA the proxy may meet needs its CRL).
    #[arg(long)]
    bundle: bool,
    /// Write DER instead of PEM (one CRL only: not with --bundle, and refused while the CA
    /// publishes several issuing intermediates).
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
    /// Each published intermediate's CRL (number, DER), oldest intermediate first.
    intermediates: Vec<(i64, Vec<u8>)>,
    root: (i64, Vec<u8>),
    /// The earliest nextUpdate of them all.
    next_update: OffsetDateTime,
}

/// One issuing intermediate whose CRL the file carries.
struct Followed {
    /// Where its CRL is: `/v1/issuers/{id}/crl`, or `/v1/crl` on a CA without
    /// `/v1/issuers`.
    path: String,
    /// Who may have signed that CRL: the intermediate; on a CA without `/v1/issuers`, each
    /// intermediate of `/v1/ca` the root signed.
    signers: Vec<CertificateDer<'static>>,
    /// The last CRL fetched from it and verified: number, DER, nextUpdate.
    held: Option<(i64, Vec<u8>, OffsetDateTime)>,
}

/// What woke a long poll.
enum Wake {
    /// Every poll ended without news.
    Nothing,
    /// An intermediate's CRL is newer.
    Crl,
    /// The CA's issuers changed (a rotation, a retirement).
    Issuers(IssuerList),
}

/// The sync daemon's state between rounds.
struct Syncer<'a> {
    args: &'a SyncArgs,
    client: Client,
    root: CertificateDer<'static>,
    /// After a root rollover: the cross-certificates of `GET /v1/issuers` the root signed
    /// (each certifies the key of another root of the CA).
    crosses: Vec<CertificateDer<'static>>,
    /// The intermediates the root signed (directly or through one of `crosses`) whose CRLs
    /// the CA publishes, oldest first.
    followed: Vec<Followed>,
    /// The revision of `GET /v1/issuers` they come from; `None` on a CA without it.
    revision: Option<i64>,
}

/// The subject key identifier of `certificate` (the root given by --ca-cert).
fn key_identifier(certificate: &CertificateDer<'_>) -> Result<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| anyhow::anyhow!("--ca-cert does not read: {e}"))?;
    latchkey::profile::subject_key_identifier(&parsed)
        .context("--ca-cert has no subject key identifier")
}

/// True when `a` and `b` carry the same subject and key: an intermediate and the
/// cross-certificate another root signed for it.
fn same_name_and_key(a: &CertificateDer<'_>, b: &CertificateDer<'_>) -> bool {
    match (
        x509_parser::parse_x509_certificate(a),
        x509_parser::parse_x509_certificate(b),
    ) {
        (Ok((_, a)), Ok((_, b))) => {
            a.subject().as_raw() == b.subject().as_raw() && a.public_key().raw == b.public_key().raw
        }
        _ => false,
    }
}

/// True when `issuer` signed `certificate`, a CA certificate that is not `issuer` itself.
fn ca_signed_by(certificate: &CertificateDer<'_>, issuer: &CertificateDer<'_>) -> bool {
    let Ok((_, issuer)) = x509_parser::parse_x509_certificate(issuer) else {
        return false;
    };
    x509_parser::parse_x509_certificate(certificate).is_ok_and(|(_, cert)| {
        cert.is_ca()
            && cert.issuer() == issuer.subject()
            && cert.subject() != issuer.subject()
            && cert.verify_signature(Some(issuer.public_key())).is_ok()
    })
}

impl Syncer<'_> {
    /// True when the root signed `certificate`, a CA certificate (not the root itself),
    /// directly or (one level only) through one of the cross-certificates it signed.
    fn signed_by_root(&self, certificate: &CertificateDer<'_>) -> bool {
        std::iter::once(&self.root)
            .chain(&self.crosses)
            .any(|issuer| ca_signed_by(certificate, issuer))
            || self
                .crosses
                .iter()
                .any(|cross| same_name_and_key(cross, certificate))
    }

    /// The cross-certificates of `list` the root signed: after a root rollover, those that
    /// certify the other root's intermediates (or its key), through which they chain to the
    /// root trusted here.
    fn crosses_of(&self, list: &IssuerList) -> Vec<CertificateDer<'static>> {
        list.cross_certificates
            .iter()
            .filter_map(|pem| {
                let mut certificates =
                    latchkey::tls::load_certificates(pem.as_bytes(), "a cross-certificate").ok()?;
                (certificates.len() == 1).then(|| certificates.remove(0))
            })
            .filter(|cross| ca_signed_by(cross, &self.root))
            .collect()
    }

    /// Reads which intermediates the CA publishes (`GET /v1/issuers`: every one not
    /// retired; `list` if already fetched), keeping only those the trusted root signed, and
    /// the CRLs already held of those still there. A CA without `/v1/issuers` (404) has one
    /// CRL at `/v1/crl`, signed by an intermediate of `/v1/ca`.
    async fn load_issuers(&mut self, list: Option<IssuerList>) -> Result<()> {
        let list = match list {
            Some(list) => Some(list),
            None => match self.client.issuers(None, 0).await {
                Ok(Some(list)) => Some(list),
                Ok(None) => bail!("the CA answered GET /v1/issuers with 304"),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            },
        };
        let mut previous = std::mem::take(&mut self.followed);
        let mut held = |path: &str| {
            previous
                .iter_mut()
                .find(|f| f.path == path)
                .and_then(|f| f.held.take())
        };
        let mut followed = Vec::new();
        match list {
            Some(list) => {
                self.crosses = self.crosses_of(&list);
                for issuer in list.issuers {
                    let Some(path) = issuer
                        .crl
                        .filter(|_| issuer.status != IssuerStatus::Retired)
                    else {
                        continue;
                    };
                    let certificate = latchkey::tls::load_certificates(
                        issuer.certificate.as_bytes(),
                        "an issuer's certificate",
                    )
                    .ok()
                    .and_then(|mut c| (c.len() == 1).then(|| c.remove(0)));
                    match certificate {
                        Some(c) if self.signed_by_root(&c) => followed.push(Followed {
                            held: held(&path),
                            path,
                            signers: vec![c],
                        }),
                        _ => tracing::warn!(
                            issuer = issuer.id,
                            subject = issuer.subject,
                            "an issuer the trusted root did not sign (directly or through a cross-certificate): its CRL is not written"
                        ),
                    }
                }
                self.revision = Some(list.revision);
            }
            None => {
                self.crosses.clear();
                let signers: Vec<_> = self
                    .client
                    .ca_chain()
                    .await?
                    .into_iter()
                    .filter(|c| self.signed_by_root(c))
                    .collect();
                if !signers.is_empty() {
                    followed.push(Followed {
                        held: held("/v1/crl"),
                        path: "/v1/crl".into(),
                        signers,
                    });
                }
                self.revision = None;
            }
        }
        if followed.is_empty() {
            bail!("the CA names no intermediate signed by the trusted root");
        }
        if self.args.der && followed.len() > 1 {
            bail!(
                "--der writes one CRL, but the CA publishes {} issuing intermediates (a rotation): write PEM (without --der)",
                followed.len()
            );
        }
        self.followed = followed;
        Ok(())
    }

    /// True once a CRL of every intermediate is held: the next round may long-poll.
    fn holds_all(&self) -> bool {
        !self.followed.is_empty() && self.followed.iter().all(|f| f.held.is_some())
    }

    /// Forgets the CRLs held, so the next round fetches and writes them again.
    fn forget(&mut self) {
        for f in &mut self.followed {
            f.held = None;
        }
    }

    /// Long-polls every intermediate's CRL and the issuer list at once for up to `wait`
    /// seconds: what changed first, if anything.
    async fn wait_for_change(&self, wait: u64) -> Result<Wake> {
        let mut polls = tokio::task::JoinSet::new();
        for f in &self.followed {
            let (client, path) = (self.client.clone(), f.path.clone());
            let held = f.held.as_ref().map(|(number, ..)| *number);
            polls.spawn(async move {
                let crl = client.issuer_crl(&path, held, wait).await?;
                Ok::<_, latchkey::client::ClientError>(crl.map_or(Wake::Nothing, |_| Wake::Crl))
            });
        }
        if let Some(revision) = self.revision {
            let client = self.client.clone();
            polls.spawn(async move {
                let list = client.issuers(Some(revision), wait).await?;
                Ok(list.map_or(Wake::Nothing, Wake::Issuers))
            });
        }
        // The others are aborted when `polls` is dropped.
        while let Some(done) = polls.join_next().await {
            match done.context("a long poll failed")?? {
                Wake::Nothing => {}
                wake => return Ok(wake),
            }
        }
        Ok(Wake::Nothing)
    }

    /// One round: waits up to `wait` seconds for a change (when every CRL is held), then
    /// fetches every intermediate's CRL that is newer than the one held, and the root's;
    /// each verified against the intermediate it is published for. `None` when nothing
    /// changed.
    async fn fetch(&mut self, wait: u64) -> Result<Option<Fetched>> {
        if self.followed.is_empty() {
            self.load_issuers(None).await?;
        } else if wait > 0 && self.holds_all() {
            match self.wait_for_change(wait).await? {
                Wake::Nothing => return Ok(None),
                Wake::Crl => {}
                Wake::Issuers(list) => self.load_issuers(Some(list)).await?,
            }
        }
        for i in 0..self.followed.len() {
            let f = &self.followed[i];
            let newer_than = f.held.as_ref().map(|(number, ..)| *number);
            let Some((_, der)) = self.client.issuer_crl(&f.path, newer_than, 0).await? else {
                continue;
            };
            let set = match verify_crl(&der, &self.followed[i].signers) {
                Ok(set) => set,
                Err(_) if self.revision.is_none() => {
                    // Perhaps a new intermediate: read the chain again, once.
                    self.load_issuers(None).await?;
                    match self.followed.get(i) {
                        Some(f) if self.revision.is_none() => verify_crl(&der, &f.signers)?,
                        _ => bail!("the CA's issuers changed while fetching its CRL; trying again"),
                    }
                }
                Err(e) => return Err(e.context(format!("the CRL at {}", self.followed[i].path))),
            };
            self.followed[i].held = Some((set.number(), der, set.next_update()));
        }
        // The CRL of the root given by --ca-cert (after a root rollover each root has its
        // own): what a proxy checking every level of a path to that root needs.
        let root_crl = self
            .client
            .root_crl_of(&key_identifier(&self.root)?)
            .await?;
        let root_set = RevocationSet::from_crl(&root_crl.1, &self.root)
            .context("the root CRL does not verify against --ca-cert")?;
        let mut next_update = root_set.next_update();
        let mut intermediates = Vec::new();
        for f in &self.followed {
            let (number, der, next) = f.held.clone().context("an intermediate's CRL is missing")?;
            next_update = next_update.min(next);
            intermediates.push((number, der));
        }
        Ok(Some(Fetched {
            intermediates,
            root: root_crl,
            next_update,
        }))
    }

    /// What the file holds for these CRLs: every intermediate's (PEM), then with --bundle
    /// the root's; with --der the one intermediate's.
    fn content(&self, fetched: &Fetched) -> Vec<u8> {
        let pem = |der: &[u8]| latchkey::pem::encode("X509 CRL", der).into_bytes();
        if self.args.der {
            // `load_issuers` refuses --der with more than one intermediate.
            return fetched
                .intermediates
                .first()
                .map(|(_, der)| der.clone())
                .unwrap_or_default();
        }
        let mut content: Vec<u8> = fetched
            .intermediates
            .iter()
            .flat_map(|(_, der)| pem(der))
            .collect();
        if self.args.bundle {
            content.extend(pem(&fetched.root.1));
        }
        content
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
            numbers = ?fetched.intermediates.iter().map(|(n, _)| n).collect::<Vec<_>>(),
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
            fetched
                .intermediates
                .iter()
                .flat_map(|(_, der)| latchkey::pem::encode("X509 CRL", der).into_bytes())
                .collect()
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
        crosses: Vec::new(),
        followed: Vec::new(),
        revision: None,
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
        let wait = if syncer.holds_all() { 60 } else { 0 };
        match syncer.fetch(wait).await {
            Ok(fetched) => {
                last_good = Instant::now();
                backoff = Duration::from_secs(1);
                if let Some(fetched) = fetched {
                    if let Err(e) = syncer.write(&fetched).await {
                        tracing::error!(error = %e, "cannot install the new CRL");
                        // Try again with the same CRLs next round.
                        syncer.forget();
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

/// The CRL `der` verified against whichever of `signers` signed it.
fn verify_crl(der: &[u8], signers: &[CertificateDer<'static>]) -> Result<RevocationSet> {
    let mut last = None;
    for signer in signers {
        match RevocationSet::from_crl(der, signer) {
            Ok(set) => return Ok(set),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "the CRL does not verify against the CA chain: {}",
        last.map_or("no intermediate".into(), |e| e.to_string())
    ))
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
