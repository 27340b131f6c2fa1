//! `latchkey enroll` and `latchkey keys`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use latchkey::api::{KeyInfo, KeyQuery};
use latchkey::client::pkcs12::{self, Protection};
use latchkey::client::{Auth, Client, KeyDir, KeyType, Renewer};
use latchkey::files;
use latchkey::model::Span;

use super::{Args, parse_as, parse_duration, password_auth, scope_list, secret, shown, when};
use latchkey::api::Code;

#[derive(Debug, ClapArgs)]
pub struct EnrollArgs {
    /// Authenticate as this user (`owner@tenant`); the password comes from
    /// LATCHKEY_PASSWORD or a prompt.
    #[arg(long, conflicts_with = "token", required_unless_present = "token")]
    user: Option<String>,
    /// Authenticate with a one-time enrollment token.
    #[arg(long, env = "LATCHKEY_TOKEN")]
    token: Option<String>,
    /// The scopes the key carries, comma-separated (with a token: default all of its scopes).
    #[arg(long, default_value = "")]
    scopes: String,
    /// A name for the key, such as the machine it lives on.
    #[arg(long)]
    name: String,
    /// A description.
    #[arg(long, default_value = "")]
    description: String,
    /// The key's lifetime (e.g. 30d); default 90 days, capped by the tenant.
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<i64>,
    /// The key type made locally: p256, p384 or ed25519.
    #[arg(long, default_value = "p256")]
    key_type: KeyType,
    /// The directory to write key.pem, cert.pem and chain.pem into.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    p12: P12Args,
}

/// Writing a key directory as PKCS#12 too.
#[derive(Debug, ClapArgs)]
pub struct P12Args {
    /// Also write the key, its certificate and the intermediate to this PKCS#12 file (for
    /// Java, browsers, Windows, macOS), protected by a password from LATCHKEY_P12_PASSWORD or
    /// a prompt. Export again after each renewal: the file holds one certificate.
    #[arg(long, value_name = "FILE")]
    p12: Option<PathBuf>,
    /// Protect the PKCS#12 file as old consumers need (3DES, SHA-1 MAC; what `openssl pkcs12
    /// -legacy` writes) instead of AES-256 and PBKDF2-SHA256.
    #[arg(long, requires = "p12")]
    p12_legacy: bool,
}

impl P12Args {
    fn protection(&self) -> Protection {
        if self.p12_legacy {
            Protection::Legacy
        } else {
            Protection::Modern
        }
    }
}

#[derive(Debug, ClapArgs)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["p12", "truststore"])))]
pub struct ExportArgs {
    /// The key directory (key.pem, chain.pem) to export with --p12.
    #[arg(long, requires = "p12")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    p12: P12Args,
    /// Write the CA's root certificate (--ca-cert, default <home>/ca.pem) to this PKCS#12
    /// truststore, as Java's `keytool` writes trusted certificates; its password comes from
    /// LATCHKEY_P12_PASSWORD or a prompt.
    #[arg(long, value_name = "FILE")]
    truststore: Option<PathBuf>,
}

/// How a key holder authenticates for reading keys.
#[derive(Debug, ClapArgs)]
pub struct ReaderArgs {
    /// Authenticate with the key certificate in this directory.
    #[arg(long, conflicts_with = "user")]
    dir: Option<PathBuf>,
    /// Authenticate as this user (`owner@tenant`) with a password.
    #[arg(long)]
    user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List keys: your own, or with the admin certificate every tenant's.
    List {
        /// Only keys in this status: active, expired or revoked.
        #[arg(long)]
        status: Option<String>,
        /// Only active keys that expire within this time from now (e.g. 14d, 12h, 30m, 90s).
        #[arg(long, value_name = "DURATION")]
        expiring_within: Option<Span>,
        /// Only this tenant's (admin).
        #[arg(long)]
        tenant: Option<String>,
        /// Only this owner's (admin).
        #[arg(long)]
        owner: Option<String>,
        /// Start after this cursor (from a previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// Page size (1 to 100).
        #[arg(long)]
        limit: Option<i64>,
        /// Follow the cursor through every page.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        reader: ReaderArgs,
    },
    /// Revoke a key: its certificates stop working everywhere within a second.
    Revoke {
        /// The key id.
        id: String,
        /// key_compromise, superseded, cessation_of_operation, affiliation_changed or unspecified.
        #[arg(long, default_value = "unspecified")]
        reason: String,
        #[command(flatten)]
        reader: ReaderArgs,
    },
    /// Show one key with its certificates.
    Show {
        /// The key id.
        id: String,
        #[command(flatten)]
        reader: ReaderArgs,
    },
}

pub async fn enroll(args: &Args, enroll: &EnrollArgs) -> Result<()> {
    let client = args.anonymous_client()?;
    // Asked before anything happens, so that a missing password leaves nothing half done.
    let p12_password = enroll
        .p12
        .p12
        .as_ref()
        .map(|_| p12_password())
        .transpose()?;
    let auth = match (&enroll.user, &enroll.token) {
        (Some(user), _) => password_auth(user)?,
        (None, Some(token)) => Auth::Token(token.clone()),
        (None, None) => bail!("give --user or --token"),
    };
    let mut request = latchkey::client::KeyRequest::new(&enroll.name)
        .description(&enroll.description)
        .scopes(scope_list(&enroll.scopes));
    if let Some(ttl) = enroll.ttl {
        request = request.lifetime(time::Duration::seconds(ttl));
    }
    let dir = KeyDir::new(&enroll.out);
    let response = client
        .enroll_into(&auth, &dir, enroll.key_type, request)
        .await?;
    if args.json {
        return args.print_json(&response.key);
    }
    let key = &response.key;
    println!(
        "key {} for {}@{}",
        shown(&key.id),
        shown(&key.owner),
        shown(&key.tenant)
    );
    println!("  scopes:       {}", shown(&key.scopes.join(",")));
    println!("  key expires:  {}", when(key.expires_at));
    println!(
        "  certificate:  {} (expires in {} s; renew before then)",
        dir.cert().display(),
        response.expires_in_seconds
    );
    println!("  chain:        {}", dir.chain().display());
    println!(
        "  private key:  {} (mode 0600; never leaves this machine)",
        dir.key().display()
    );
    if let (Some(path), Some(password)) = (&enroll.p12.p12, &p12_password) {
        write_key_store(&dir, path, password, enroll.p12.protection())?;
        println!("  PKCS#12:      {}", path.display());
    }
    Ok(())
}

/// `latchkey export`: a key directory as PKCS#12, the CA root as a truststore.
pub fn export(args: &Args, export: &ExportArgs) -> Result<()> {
    if export.p12.p12.is_some() && export.dir.is_none() {
        bail!("--p12 needs --dir, the key directory to export");
    }
    let password = p12_password()?;
    if let (Some(path), Some(dir)) = (&export.p12.p12, &export.dir) {
        write_key_store(&KeyDir::new(dir), path, &password, export.p12.protection())?;
        println!("key store:  {}", path.display());
    }
    if let Some(path) = &export.truststore {
        let ca = Args::read(&args.ca_cert_path(), "the CA certificate")?;
        let store = pkcs12::trust_store(&ca, "latchkey-ca", &password, export.p12.protection())?;
        files::replace(path, &store, false)?;
        println!("truststore: {} (alias latchkey-ca)", path.display());
    }
    Ok(())
}

/// The PKCS#12 password: LATCHKEY_P12_PASSWORD, or asked twice without echo.
fn p12_password() -> Result<String> {
    let password = secret(
        "LATCHKEY_P12_PASSWORD",
        "password for the PKCS#12 file: ",
        true,
    )?;
    if password.is_empty() {
        bail!("the PKCS#12 password must not be empty");
    }
    Ok(password)
}

/// Writes `dir`'s key and chain to `path` (mode 0600, replaced atomically), named after the
/// certificate's subject (`owner@tenant`).
fn write_key_store(
    dir: &KeyDir,
    path: &std::path::Path,
    password: &str,
    protection: Protection,
) -> Result<()> {
    let key = Args::read(&dir.key(), "the private key")?;
    let chain = Args::read(&dir.chain(), "the certificate chain")?;
    let store = pkcs12::key_store(&key, &chain, &alias_of(&chain), password, protection)?;
    files::replace(path, &store, true)?;
    Ok(())
}

/// `CN@O` of the first certificate in `chain_pem`, or `latchkey` if it has neither.
fn alias_of(chain_pem: &[u8]) -> String {
    use rustls_pki_types::pem::PemObject;
    let Some(Ok(der)) = rustls_pki_types::CertificateDer::pem_slice_iter(chain_pem).next() else {
        return "latchkey".into();
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return "latchkey".into();
    };
    let cn = cert.subject().iter_common_name().next();
    let o = cert.subject().iter_organization().next();
    match (
        cn.and_then(|a| a.as_str().ok()),
        o.and_then(|a| a.as_str().ok()),
    ) {
        (Some(cn), Some(o)) => format!("{cn}@{o}"),
        (Some(cn), None) => cn.to_owned(),
        _ => "latchkey".into(),
    }
}

impl ReaderArgs {
    fn client(&self, args: &Args) -> Result<(Client, Option<Auth>)> {
        match (&self.dir, &self.user) {
            (Some(dir), _) => Ok((args.client_with_identity(dir, "the key")?, None)),
            (None, Some(user)) => Ok((args.anonymous_client()?, Some(password_auth(user)?))),
            (None, None) => Ok((args.admin_client()?, None)),
        }
    }
}

pub async fn keys(args: &Args, cmd: &KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::List {
            status,
            expiring_within,
            tenant,
            owner,
            cursor,
            limit,
            all,
            reader,
        } => {
            let (client, auth) = reader.client(args)?;
            let mut query = KeyQuery {
                tenant: tenant
                    .as_deref()
                    .map(|t| parse_as(t, Code::InvalidName))
                    .transpose()?,
                owner: owner
                    .as_deref()
                    .map(|o| parse_as(o, Code::InvalidName))
                    .transpose()?,
                name: None,
                serial: None,
                status: status.as_deref().map(str::parse).transpose()?,
                expiring_within: *expiring_within,
                cursor: cursor.clone(),
                limit: *limit,
            };
            let mut keys = Vec::new();
            let next = loop {
                let page = client.list_keys(auth.as_ref(), &query).await?;
                keys.extend(page.keys);
                match page.next_cursor {
                    Some(next) if *all => query.cursor = Some(next),
                    other => break other,
                }
            };
            if args.json {
                return args.print_json(&serde_json::json!({ "keys": keys, "next_cursor": next }));
            }
            for key in &keys {
                print_key_line(key);
            }
            if let Some(next) = next {
                println!("(more: --cursor {})", shown(&next));
            }
        }
        KeysCommand::Revoke { id, reason, reader } => {
            let (client, auth) = reader.client(args)?;
            let key = client.revoke_key(auth.as_ref(), id, Some(reason)).await?;
            if args.json {
                return args.print_json(&key);
            }
            let revoked = key.certificates.iter().filter(|c| c.revoked).count();
            println!(
                "key {} revoked ({}); {revoked} certificate(s) revoked",
                shown(&key.id),
                shown(reason)
            );
        }
        KeysCommand::Show { id, reader } => {
            let (client, auth) = reader.client(args)?;
            let key = client.key(auth.as_ref(), id).await?;
            if args.json {
                return args.print_json(&key);
            }
            print_key_line(&key);
            if !key.description.is_empty() {
                println!("  description: {}", shown(&key.description));
            }
            println!(
                "  created {}  expires {}",
                when(key.created_at),
                when(key.expires_at)
            );
            for c in &key.certificates {
                let revoked = if c.revoked { "  revoked" } else { "" };
                println!(
                    "  certificate {}  {} .. {}{revoked}",
                    shown(&c.serial),
                    when(c.not_before),
                    when(c.not_after)
                );
            }
        }
    }
    Ok(())
}

fn print_key_line(key: &KeyInfo) {
    println!(
        "{}  {:<8} {}@{}  {:<20} {}  expires {}",
        shown(&key.id),
        shown(key.status.as_str()),
        shown(&key.owner),
        shown(&key.tenant),
        shown(&key.name),
        shown(&key.scopes.join(",")),
        when(key.expires_at)
    );
}

#[derive(Debug, ClapArgs)]
pub struct RenewArgs {
    /// The key directory (key.pem, cert.pem, chain.pem) whose certificate to renew.
    #[arg(long)]
    dir: PathBuf,
    /// Keep running, renewing at two thirds of each certificate's lifetime.
    #[arg(long)]
    watch: bool,
}

pub async fn renew(args: &Args, renew: &RenewArgs) -> Result<()> {
    let ca = Args::read(&args.ca_cert_path(), "the CA certificate")?;
    let renewer = Renewer::new(&args.server, &ca, KeyDir::new(&renew.dir));
    if renew.watch {
        return Err(renewer.watch().await.into());
    }
    let response = renewer.renew_once().await?;
    if args.json {
        return args.print_json(&response.key);
    }
    println!(
        "key {}: new certificate in {} (expires in {} s)",
        shown(&response.key.id),
        renew.dir.join("cert.pem").display(),
        response.expires_in_seconds
    );
    Ok(())
}
