//! `latchkey tenant|user|token`: administration with the admin certificate from the CA home.

use anyhow::Result;
use clap::Subcommand;
use latchkey::api::{BulkRevocation, NewTenant, NewToken, NewUser, TenantChange, UserChange};

use super::{Args, parse_as, parse_duration, password, scope_set, shown, when};
use latchkey::api::Code;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        /// The tenant's name (a-z, 0-9, '.', '_', '-').
        name: String,
        /// The longest key lifetime in the tenant, in days (at most 180).
        #[arg(long)]
        max_key_days: Option<i64>,
        /// Give the tenant an issuing intermediate of its own (`GET /v1/ca?tenant=NAME`): a
        /// relying service that trusts only it accepts no other tenant's key.
        #[arg(long)]
        dedicated_issuer: bool,
    },
    /// List tenants.
    List,
    /// Disable a tenant: no new keys; existing keys work until revoked.
    Disable {
        /// The tenant.
        name: String,
    },
    /// Enable a disabled tenant.
    Enable {
        /// The tenant.
        name: String,
    },
    /// Set a tenant's policy, or its issuer.
    #[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
    Set {
        /// The tenant.
        name: String,
        /// The longest key lifetime in the tenant, in days (at most 180).
        #[arg(long, group = "change")]
        max_key_days: Option<i64>,
        /// Give the tenant an issuing intermediate of its own; its keys renew under it.
        #[arg(long, group = "change", conflicts_with = "shared_issuer")]
        dedicated_issuer: bool,
        /// Go back to the shared intermediate; the tenant's own stays published until its
        /// certificates have expired.
        #[arg(long, group = "change")]
        shared_issuer: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password comes from LATCHKEY_PASSWORD or a prompt.
    Add {
        /// `owner@tenant`.
        user: String,
        /// The scopes the user may put into its keys, comma-separated.
        #[arg(long)]
        scopes: String,
    },
    /// List a tenant's users.
    List {
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Disable a user: no new keys; existing keys work until revoked.
    Disable {
        /// `owner@tenant`.
        user: String,
    },
    /// Enable a disabled user.
    Enable {
        /// `owner@tenant`.
        user: String,
    },
    /// Replace a user's grants.
    Grants {
        /// `owner@tenant`.
        user: String,
        /// The scopes the user may put into its keys, comma-separated.
        #[arg(long)]
        scopes: String,
    },
    /// Set a new password (from LATCHKEY_PASSWORD or a prompt).
    ResetPassword {
        /// `owner@tenant`.
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a one-time enrollment token; it is printed once.
    Create {
        /// `owner@tenant` of the key the token enrolls.
        #[arg(long)]
        owner: String,
        /// The scopes the key may carry, comma-separated.
        #[arg(long)]
        scopes: String,
        /// How long the token stays usable (e.g. 1h).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: i64,
    },
    /// List enrollment tokens (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke an unused token.
    Revoke {
        /// The token's id (from `token list`).
        id: i64,
    },
}

#[derive(Debug, clap::Args)]
pub struct BulkRevokeArgs {
    /// The tenant whose keys to revoke.
    #[arg(long)]
    tenant: String,
    /// Only this owner's keys.
    #[arg(long)]
    owner: Option<String>,
    /// key_compromise, superseded, cessation_of_operation, affiliation_changed or unspecified.
    #[arg(long, default_value = "unspecified")]
    reason: String,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this tenant's events.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this actor's (e.g. admin:admin, user:alice@acme, key:<id>).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (e.g. key.issue, key.revoke).
    #[arg(long)]
    action: Option<String>,
    /// Only at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// At most this many events.
    #[arg(long, default_value = "50")]
    limit: i64,
    /// Start after this cursor (printed at the end of the previous page).
    #[arg(long)]
    cursor: Option<String>,
}

pub async fn tenant(args: &Args, cmd: &TenantCommand) -> Result<()> {
    let client = args.admin_client()?;
    match cmd {
        TenantCommand::Add {
            name,
            max_key_days,
            dedicated_issuer,
        } => {
            let tenant = client
                .add_tenant(&NewTenant {
                    name: parse_as(name, Code::InvalidName)?,
                    max_key_days: *max_key_days,
                    dedicated_issuer: *dedicated_issuer,
                })
                .await?;
            if args.json {
                return args.print_json(&tenant);
            }
            println!(
                "tenant {} added (keys up to {} days{})",
                shown(&tenant.name),
                tenant.max_key_days,
                if *dedicated_issuer {
                    "; its own issuer: GET /v1/ca?tenant=NAME"
                } else {
                    ""
                }
            );
        }
        TenantCommand::Disable { name } | TenantCommand::Enable { name } => {
            let disabled = matches!(cmd, TenantCommand::Disable { .. });
            let change = TenantChange {
                disabled: Some(disabled),
                ..Default::default()
            };
            let t = client.change_tenant(name, &change).await?;
            if args.json {
                return args.print_json(&t);
            }
            println!(
                "tenant {} {}",
                shown(&t.name),
                if t.disabled { "disabled" } else { "enabled" }
            );
        }
        TenantCommand::Set {
            name,
            max_key_days,
            dedicated_issuer,
            shared_issuer,
        } => {
            let change = TenantChange {
                max_key_days: *max_key_days,
                dedicated_issuer: match (dedicated_issuer, shared_issuer) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                ..Default::default()
            };
            let t = client.change_tenant(name, &change).await?;
            if args.json {
                return args.print_json(&t);
            }
            let issuer = match change.dedicated_issuer {
                Some(true) => "; its own issuer signs its keys (GET /v1/ca?tenant=NAME)",
                Some(false) => "; the shared issuer signs its keys",
                None => "",
            };
            println!(
                "tenant {}: keys up to {} days{issuer}",
                shown(&t.name),
                t.max_key_days
            );
        }
        TenantCommand::List => {
            let tenants = client.tenants().await?;
            if args.json {
                return args.print_json(&tenants);
            }
            for t in tenants {
                let state = if t.disabled { "  disabled" } else { "" };
                println!(
                    "{:<32} max {:>3} days{state}",
                    shown(&t.name),
                    t.max_key_days
                );
            }
        }
    }
    Ok(())
}

pub async fn user(args: &Args, cmd: &UserCommand) -> Result<()> {
    let client = args.admin_client()?;
    match cmd {
        UserCommand::Add { user, scopes } => {
            let user = parse_as(user, Code::InvalidName)?;
            let scopes = scope_set(scopes)?;
            let password = password(&format!("new password for {user}: "), true)?;
            let added = client
                .add_user(&NewUser {
                    user,
                    password: password.into(),
                    scopes,
                })
                .await?;
            if args.json {
                return args.print_json(&added);
            }
            println!(
                "user {} added with scopes {}",
                shown(&added.user),
                shown(&added.scopes.join(","))
            );
        }
        UserCommand::Disable { user } | UserCommand::Enable { user } => {
            let disabled = matches!(cmd, UserCommand::Disable { .. });
            let change = UserChange {
                disabled: Some(disabled),
                ..Default::default()
            };
            let u = client.change_user(user, &change).await?;
            if args.json {
                return args.print_json(&u);
            }
            println!(
                "user {} {}",
                shown(&u.user),
                if u.disabled { "disabled" } else { "enabled" }
            );
        }
        UserCommand::Grants { user, scopes } => {
            let change = UserChange {
                scopes: Some(scope_set(scopes)?),
                ..Default::default()
            };
            let u = client.change_user(user, &change).await?;
            if args.json {
                return args.print_json(&u);
            }
            println!(
                "user {} may grant {}",
                shown(&u.user),
                shown(&u.scopes.join(","))
            );
        }
        UserCommand::ResetPassword { user } => {
            let password = password(&format!("new password for {user}: "), true)?;
            let change = UserChange {
                password: Some(password.into()),
                ..Default::default()
            };
            let u = client.change_user(user, &change).await?;
            if args.json {
                return args.print_json(&u);
            }
            println!("user {}: password reset", shown(&u.user));
        }
        UserCommand::List { tenant } => {
            let users = client.users(tenant).await?;
            if args.json {
                return args.print_json(&users);
            }
            for u in users {
                let state = if u.disabled { "  disabled" } else { "" };
                println!(
                    "{:<40} {}{state}",
                    shown(&u.user),
                    shown(&u.scopes.join(","))
                );
            }
        }
    }
    Ok(())
}

pub async fn token(args: &Args, cmd: &TokenCommand) -> Result<()> {
    let client = args.admin_client()?;
    match cmd {
        TokenCommand::Create { owner, scopes, ttl } => {
            let token = client
                .create_token(&NewToken {
                    owner: parse_as(owner, Code::InvalidName)?,
                    scopes: scope_set(scopes)?,
                    ttl_seconds: Some(*ttl),
                })
                .await?;
            if args.json {
                return args.print_json(&token);
            }
            println!("{}", shown(token.token.as_ref().map_or("", |t| t.expose())));
            eprintln!(
                "one-time enrollment token {} for {} ({}), valid until {}; it is shown only now",
                token.id,
                shown(&token.owner),
                shown(&token.scopes.join(",")),
                when(token.expires_at)
            );
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(*id).await?;
            println!("token {id} revoked");
        }
        TokenCommand::List { tenant } => {
            let tokens = client.tokens(tenant.as_deref()).await?;
            if args.json {
                return args.print_json(&tokens);
            }
            for t in tokens {
                println!(
                    "{:>6}  {:<32} {:<8} {}  {}",
                    t.id,
                    shown(&t.owner),
                    shown(t.status.as_str()),
                    when(t.expires_at),
                    shown(&t.scopes.join(","))
                );
            }
        }
    }
    Ok(())
}

pub async fn revoke(args: &Args, revoke: &BulkRevokeArgs) -> Result<()> {
    let result = args
        .admin_client()?
        .revoke_many(&BulkRevocation {
            tenant: parse_as(&revoke.tenant, Code::InvalidName)?,
            owner: revoke
                .owner
                .as_deref()
                .map(|owner| parse_as(owner, Code::InvalidName))
                .transpose()?,
            reason: Some(parse_as(&revoke.reason, Code::InvalidReason)?),
        })
        .await?;
    if args.json {
        return args.print_json(&result);
    }
    println!(
        "revoked {} key(s) and {} certificate(s) of {}{}",
        result.keys,
        result.certificates,
        revoke
            .owner
            .as_deref()
            .map(|o| format!("{o}@"))
            .unwrap_or_default(),
        revoke.tenant
    );
    Ok(())
}

pub async fn audit(args: &Args, audit: &AuditArgs) -> Result<()> {
    let mut query = vec![("limit", audit.limit.to_string())];
    for (name, value) in [
        ("tenant", &audit.tenant),
        ("actor", &audit.actor),
        ("action", &audit.action),
        ("since", &audit.since),
        ("until", &audit.until),
        ("cursor", &audit.cursor),
    ] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    let page = args.admin_client()?.audit(&query).await?;
    if args.json {
        return args.print_json(&page);
    }
    for e in &page.events {
        println!(
            "{:>6}  {}  {:<24} {:<20} {} {} {}",
            e.id,
            when(e.at),
            shown(&e.actor),
            shown(&e.action),
            shown(e.tenant.as_deref().unwrap_or_default()),
            shown(e.target.as_deref().unwrap_or_default()),
            // JSON escapes C0 controls but not bidi or other format characters.
            shown(&e.detail.to_string())
        );
    }
    if let Some(next) = page.next_cursor {
        println!("(more: --cursor {})", shown(&next));
    }
    Ok(())
}
