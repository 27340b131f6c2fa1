//! `latchkey enroll` and `latchkey keys`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use latchkey::api::{EnrollRequest, KeyInfo};
use latchkey::client::{Auth, Client, KeyDir, KeyListQuery, KeyType, Renewer};

use super::{Args, parse_duration, password_auth, scope_list, shown, when};

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
    let auth = match (&enroll.user, &enroll.token) {
        (Some(user), _) => password_auth(user)?,
        (None, Some(token)) => Auth::Token(token.clone()),
        (None, None) => bail!("give --user or --token"),
    };
    let request = EnrollRequest {
        csr: String::new(),
        name: enroll.name.clone(),
        description: enroll.description.clone(),
        scopes: scope_list(&enroll.scopes),
        ttl_seconds: enroll.ttl,
        expires_at: None,
    };
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
    Ok(())
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
            tenant,
            owner,
            cursor,
            limit,
            all,
            reader,
        } => {
            let (client, auth) = reader.client(args)?;
            let mut query = KeyListQuery {
                tenant: tenant.clone(),
                owner: owner.clone(),
                status: status.clone(),
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
        shown(&key.status),
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
