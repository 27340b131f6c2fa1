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
    }
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
        .context(unrecorded)?;
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
