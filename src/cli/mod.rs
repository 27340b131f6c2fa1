//! The command line: arguments and dispatch. Every client command is a thin wrapper over
//! [`latchkey::client::Client`]; errors print as one line and exit non-zero.

mod admin;
mod ca;
mod crl;
mod keys;
mod migrate;
mod serve;
mod webhook;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use latchkey::client::{Auth, Client, DEFAULT_SERVER};

/// A mutual-TLS certificate authority whose client certificates are the API keys.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about)]
pub struct Args {
    /// The CA home: key material, settings, the embedded database, the admin certificate.
    #[arg(long, global = true, env = "LATCHKEY_HOME", default_value = "certs")]
    home: PathBuf,
    /// The CA to talk to (client commands).
    #[arg(long, global = true, env = "LATCHKEY_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// The root certificate to trust (default: <home>/ca.pem).
    #[arg(long, global = true, env = "LATCHKEY_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// A file holding the passphrase of the CA's encrypted keys (a systemd credential
    /// works); without it, it is asked for at a terminal.
    #[arg(long, global = true, env = "LATCHKEY_CA_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
    /// A file holding the PIN of the PKCS#11 token with the intermediate's key; without it,
    /// it is asked for at a terminal.
    #[arg(long, global = true, env = "LATCHKEY_PKCS11_PIN_FILE")]
    pkcs11_pin_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a new CA in the home directory (serve does this on its first start).
    Init(serve::InitArgs),
    /// Run the CA (initializing it on the first start).
    Serve(Box<serve::ServeArgs>),
    /// Manage tenants (admin).
    #[command(subcommand)]
    Tenant(admin::TenantCommand),
    /// Manage users (admin).
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage enrollment tokens (admin).
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Tell a tenant's endpoints of its key changes, signed (admin).
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Get a key: make a key pair here and have the CA certify it.
    Enroll(keys::EnrollArgs),
    /// List, show and revoke keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Renew a key directory's certificate (once, or keep renewing with --watch).
    Renew(keys::RenewArgs),
    /// Write a key directory as PKCS#12 (Java, browsers), or the CA as a truststore.
    Export(keys::ExportArgs),
    /// Revoke every key of a tenant, or of one owner in it (admin).
    Revoke(admin::BulkRevokeArgs),
    /// Read the audit log (admin).
    Audit(admin::AuditArgs),
    /// Copy the CA's store into an empty PostgreSQL database, verified, for replicas.
    Migrate(migrate::MigrateArgs),
    /// Replace the admin certificate (on the CA host); every earlier one is revoked.
    RotateAdmin(serve::RotateAdminArgs),
    /// CRLs: sign the root's (where the root key is), keep a proxy's CRL file current.
    #[command(subcommand)]
    Crl(crl::CrlCommand),
    /// The CA's own keys (on the CA host).
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// List the CA's issuing intermediates: which signs, which are still published.
    Issuers,
}

/// Runs a parsed command line.
pub async fn run(args: Args) -> Result<()> {
    match &args.command {
        Command::Init(init) => serve::init(&args, init).await,
        Command::Serve(serve) => serve::serve(&args, serve).await,
        Command::Tenant(cmd) => admin::tenant(&args, cmd).await,
        Command::User(cmd) => admin::user(&args, cmd).await,
        Command::Token(cmd) => admin::token(&args, cmd).await,
        Command::Webhook(cmd) => webhook::webhook(&args, cmd).await,
        Command::Enroll(enroll) => keys::enroll(&args, enroll).await,
        Command::Keys(cmd) => keys::keys(&args, cmd).await,
        Command::Renew(renew) => keys::renew(&args, renew).await,
        Command::Export(export) => keys::export(&args, export),
        Command::Revoke(revoke) => admin::revoke(&args, revoke).await,
        Command::Audit(audit) => admin::audit(&args, audit).await,
        Command::Migrate(m) => migrate::migrate(&args, m).await,
        Command::RotateAdmin(rotate) => serve::rotate_admin(&args, rotate).await,
        Command::Crl(cmd) => crl::crl(&args, cmd).await,
        Command::Ca(cmd) => ca::ca(&args, cmd).await,
        Command::Issuers => ca::issuers(&args).await,
    }
}

impl Args {
    /// The CA home, holding the passphrase of its keys when they are encrypted, or when
    /// `sealing` (they are about to be), and the PIN of its PKCS#11 token when the
    /// intermediate's key is in one, or when `in_token` (it is about to be made there).
    /// Without them, opening a key fails with one line saying how to give what is missing.
    fn ca_home(&self, sealing: bool, in_token: bool) -> Result<latchkey::home::Home> {
        let home = latchkey::home::Home::new(&self.home);
        let passphrase = self.ca_passphrase(sealing || home.keys_encrypted(), sealing)?;
        let in_token = in_token || home.settings().is_ok_and(|s| s.pkcs11.is_some());
        let pin = match &self.pkcs11_pin_file {
            Some(file) => Some(latchkey::ca::Pkcs11Pin::new(
                latchkey::home::key_file::read_secret_line(file, "PKCS#11 PIN")?,
            )),
            None if in_token && std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                let asked = rpassword::prompt_password("PKCS#11 token PIN: ")
                    .context("cannot read the PKCS#11 PIN")?;
                Some(latchkey::ca::Pkcs11Pin::new(asked))
            }
            None => None,
        };
        Ok(home.with_passphrase(passphrase).with_pkcs11_pin(pin))
    }

    /// The CA key passphrase from `--passphrase-file`; else, when `needed`, asked for at a
    /// terminal (twice when `new`).
    fn ca_passphrase(&self, needed: bool, new: bool) -> Result<Option<latchkey::home::Passphrase>> {
        use latchkey::home::Passphrase;
        use std::io::IsTerminal;
        if let Some(file) = &self.passphrase_file {
            return Ok(Some(Passphrase::from_file(file)?));
        }
        if !needed || !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        let asked = rpassword::prompt_password("CA key passphrase: ")
            .context("cannot read the CA key passphrase")?;
        if new && rpassword::prompt_password("again: ")? != asked {
            bail!("the passphrases differ");
        }
        Ok(Some(Passphrase::new(asked)?))
    }

    fn ca_cert_path(&self) -> PathBuf {
        self.ca_cert
            .clone()
            .unwrap_or_else(|| self.home.join("ca.pem"))
    }

    fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
    }

    /// A client without a client certificate.
    fn anonymous_client(&self) -> Result<Client> {
        let ca = Self::read(&self.ca_cert_path(), "the CA certificate")?;
        Ok(Client::new(&self.server, &ca, None)?)
    }

    /// A client presenting the certificate in `dir` (`chain.pem`, `key.pem`).
    fn client_with_identity(&self, dir: &Path, what: &str) -> Result<Client> {
        let ca = Self::read(&self.ca_cert_path(), "the CA certificate")?;
        let chain = Self::read(&dir.join("chain.pem"), what)?;
        let key = Self::read(&dir.join("key.pem"), what)?;
        Ok(Client::new(&self.server, &ca, Some((&chain, &key)))?)
    }

    /// A client presenting the administrator certificate from the CA home.
    fn admin_client(&self) -> Result<Client> {
        self.client_with_identity(&self.home.join("admin"), "the admin certificate")
    }

    fn print_json(&self, value: &impl serde::Serialize) -> Result<()> {
        println!("{}", json_shown(&serde_json::to_string_pretty(value)?));
        Ok(())
    }
}

/// A password from `LATCHKEY_PASSWORD`, or asked for without echo.
fn password(prompt: &str, confirm: bool) -> Result<String> {
    secret("LATCHKEY_PASSWORD", prompt, confirm)
}

/// A secret from the environment variable `var`, or asked for without echo.
fn secret(var: &str, prompt: &str, confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p);
    }
    let first = rpassword::prompt_password(prompt)
        .with_context(|| format!("cannot read a password (set {var} when there is no terminal)"))?;
    if confirm {
        let second = rpassword::prompt_password("again: ")?;
        if first != second {
            bail!("the passwords differ");
        }
    }
    Ok(first)
}

/// `--user alice@acme` with its password, as a credential.
fn password_auth(user: &str) -> Result<Auth> {
    Ok(Auth::Password {
        user: user.to_owned(),
        password: password(&format!("password for {user}: "), false)?,
    })
}

/// Parses `90d`, `12h`, `30m`, `45s` or plain seconds: a [`latchkey::model::Span`], the
/// form the API reads too (`expiring_within`), in seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    s.trim()
        .parse::<latchkey::model::Span>()
        .map(latchkey::model::Span::seconds)
        .map_err(|e| e.to_string())
}

/// A time as RFC 3339, the way every command prints one.
fn when(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Text the CA stored, as the terminal should get it: control, bidi and other unprintable
/// characters written as `\u{…}`. The CA refuses them in new names and descriptions, but a
/// record written before that rule (or straight into the store) may still hold them, and a
/// text listing must never let a key holder clear, retitle or repaint an admin's terminal.
/// Every print of stored text goes through here; `--json` output is escaped by JSON itself.
fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    latchkey::model::text::escape(s)
}

/// JSON as the terminal should get it. serde_json escapes C0 controls inside strings but
/// writes every other character as it is; those that [`shown`] would escape (DEL, C1, bidi,
/// separators…) become `\uXXXX` escapes, which every JSON reader decodes to the same string.
/// Outside strings, pretty JSON is ASCII, its only control character the newline between
/// lines, which stays.
fn json_shown(json: &str) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| c != '\n' && latchkey::model::text::is_unsafe(c);
    use std::fmt::Write as _;
    if !json.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if escaped(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Parses a command-line value into a model type before anything is asked or sent, failing
/// as the CA would: one line that ends in the CA's stable code for that value.
fn parse_as<T: std::str::FromStr>(value: &str, code: latchkey::api::Code) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| anyhow::anyhow!("{e} ({code})"))
}

/// Parses `a,b c` into a set of scopes, failing as [`parse_as`] does.
fn scope_set(s: &str) -> Result<latchkey::model::ScopeSet> {
    latchkey::model::ScopeSet::parse_list(s)
        .map_err(|e| anyhow::anyhow!("{e} ({})", latchkey::api::Code::InvalidScope))
}

/// Splits `a,b c` into scope strings.
fn scope_list(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
