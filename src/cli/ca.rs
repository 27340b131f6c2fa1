//! `latchkey ca …`: the CA's own keys, on the CA host.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use super::Args;

/// `latchkey ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Encrypt the root and intermediate keys at rest (PKCS#8: PBKDF2-SHA256, AES-256) under a
    /// passphrase from --passphrase-file or a prompt; every later start needs it. Keys
    /// already encrypted must open with the same passphrase.
    EncryptKeys(EncryptKeysArgs),
    /// Make a new issuing intermediate under the root (the root key must be in the home):
    /// it signs every new certificate and renewal from now on, at every replica within a
    /// second. The one it replaces stays published (`GET /v1/ca`, its CRL) until its last
    /// certificate expires. Runs next to a running CA or not.
    Rotate(RotateArgs),
}

/// Options of `latchkey ca rotate`.
#[derive(Debug, Parser)]
pub struct RotateArgs {
    /// Rotate this tenant's own intermediate instead of the shared one.
    #[arg(long, conflicts_with = "root")]
    tenant: Option<String>,
    /// Roll the root over: a new root, a new shared intermediate under it, and a
    /// cross-certificate each way, so that parties trusting either root accept every key.
    /// The new root is written to <home>/root-<id>.pem (and served at GET /v1/ca/root).
    #[arg(long)]
    root: bool,
    /// The CA's database (default: SQLite in <home>/latchkey.db).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database_url: Option<String>,
}

/// Options of `latchkey ca encrypt-keys`.
#[derive(Debug, Parser)]
pub struct EncryptKeysArgs {
    /// The database the audit event goes to (default: SQLite in <home>/latchkey.db).
    #[arg(long, env = "LATCHKEY_DATABASE_URL")]
    database_url: Option<String>,
}

/// Runs `latchkey ca …`.
pub async fn ca(args: &Args, command: &CaCommand) -> Result<()> {
    match command {
        CaCommand::EncryptKeys(encrypt) => encrypt_keys(args, encrypt).await,
        CaCommand::Rotate(rotate) => rotate_intermediate(args, rotate).await,
    }
}

async fn rotate_intermediate(args: &Args, rotate: &RotateArgs) -> Result<()> {
    let home = args.ca_home(false, false)?;
    if !home.is_initialized() {
        bail!("no CA in {}", args.home.display());
    }
    if !home.root_key().exists() {
        bail!(
            "the root key is not in {}: run `latchkey ca rotate` where it is, with this CA's \
             --database-url",
            args.home.display()
        );
    }
    if home.ensure_issuer_keys_secret()? {
        println!(
            "latchkey: made {}: copy it to every replica's CA home (mode 0600); it opens the \
             new intermediate's key, which the database keeps sealed",
            home.issuer_keys_secret().display()
        );
    }
    let prepared = super::serve::open_existing(&home, rotate.database_url.as_deref()).await?;
    if rotate.root {
        let (root, rotation) = prepared.issuers.rotate_root("system").await?;
        prepared.authority.close().await;
        let file = home.dir().join(format!("root-{}.pem", root.id));
        home.replace(&file, root.pem.as_bytes(), false)?;
        println!(
            "latchkey: root {} is the new root (in {}; GET /v1/ca/root), and issuer {} ({}) \
             under it signs from now on; parties trusting the old ca.pem keep accepting every \
             key through the cross-certificates in GET /v1/ca",
            root.id,
            file.display(),
            rotation.issuer.id,
            rotation.issuer.subject
        );
        return Ok(());
    }
    let scope = match &rotate.tenant {
        None => None,
        Some(name) => {
            let set = prepared.issuers.current();
            let dedicated = set
                .issuers()
                .iter()
                .find_map(|i| i.tenant.clone().filter(|(_, t)| t.as_str() == name));
            Some(dedicated.with_context(|| {
                format!(
                    "tenant {name} has no intermediate of its own: give it one with \
                     `latchkey tenant set {name} --dedicated-issuer`"
                )
            })?)
        }
    };
    let rotation = prepared
        .issuers
        .rotate(scope, "system", "latchkey ca rotate")
        .await?;
    prepared.authority.close().await;
    let issuer = &rotation.issuer;
    println!(
        "latchkey: issuer {} ({}) signs from now on, until {}; {}",
        issuer.id,
        issuer.subject,
        issuer.not_after,
        match rotation.superseded {
            Some(old) => format!("issuer {old} stays published until its last certificate expires"),
            None => "no intermediate was active before".into(),
        }
    );
    Ok(())
}

async fn encrypt_keys(args: &Args, encrypt: &EncryptKeysArgs) -> Result<()> {
    let home = args.ca_home(true, false)?;
    if !home.is_initialized() {
        bail!("no CA in {}", args.home.display());
    }
    let sealed = home.encrypt_keys()?;
    if sealed.is_empty() {
        println!(
            "latchkey: the CA's keys in {} are encrypted already",
            args.home.display()
        );
        return Ok(());
    }
    let files: Vec<String> = sealed.iter().map(|p| p.display().to_string()).collect();
    let unrecorded = "the keys are encrypted, but the audit log does not say so yet";
    let authority = super::serve::open_existing(&home, encrypt.database_url.as_deref())
        .await
        .context(unrecorded)?
        .authority;
    authority
        .record_keys_encrypted(&files)
        .await
        .context(unrecorded)?;
    authority.close().await;
    println!(
        "latchkey: encrypted {}; every start now needs the passphrase (--passphrase-file or LATCHKEY_CA_PASSPHRASE_FILE)",
        files.join(", ")
    );
    Ok(())
}

/// `latchkey issuers`: `GET /v1/issuers`, one line each (or the JSON with --json).
pub async fn issuers(args: &Args) -> Result<()> {
    let list = args
        .anonymous_client()?
        .issuers(None, 0)
        .await?
        .context("the CA answered GET /v1/issuers with no list")?;
    if args.json {
        return args.print_json(&list);
    }
    for issuer in &list.issuers {
        let status = issuer.status.as_str();
        let scope = match &issuer.tenant {
            Some(tenant) => format!("tenant {}", super::shown(tenant.as_str())),
            None => "shared".to_owned(),
        };
        println!(
            "{}\t{status}\t{scope}\tuntil {}\t{}",
            issuer.id,
            super::when(issuer.not_after),
            issuer.subject
        );
    }
    Ok(())
}
