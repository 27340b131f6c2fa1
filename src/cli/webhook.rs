//! `latchkey webhook add|list|remove|deliveries`: a tenant's webhooks (admin).

use anyhow::Result;
use clap::Subcommand;
use latchkey::api::{Code, NewWebhook};

use super::{Args, parse_as, shown, when};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Tell an endpoint of a tenant's key changes; its signing secret is printed once.
    Add {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Where to POST: https://… (or http:// to a loopback address with --allow-http).
        #[arg(long)]
        url: String,
        /// What to send, comma-separated: key.issued, key.renewed, key.revoked, key.expiring.
        #[arg(
            long,
            default_value = "key.issued,key.renewed,key.revoked,key.expiring"
        )]
        events: String,
        /// Allow plain http, to a loopback address only (a receiver on the CA's host).
        #[arg(long)]
        allow_http: bool,
    },
    /// List webhooks (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a webhook: nothing more is sent to it.
    Remove {
        /// The webhook's id (from `webhook list`).
        id: i64,
    },
    /// The newest messages and how their delivery went.
    Deliveries {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many (1 to 1000, default 100).
        #[arg(long)]
        limit: Option<i64>,
    },
}

pub async fn webhook(args: &Args, cmd: &WebhookCommand) -> Result<()> {
    let client = args.admin_client()?;
    match cmd {
        WebhookCommand::Add {
            tenant,
            url,
            events,
            allow_http,
        } => {
            let webhook = client
                .add_webhook(&NewWebhook {
                    tenant: parse_as(tenant, Code::InvalidName)?,
                    url: url.clone(),
                    events: parse_as(events, Code::InvalidRequest)?,
                    allow_http: *allow_http,
                })
                .await?;
            if args.json {
                return args.print_json(&webhook);
            }
            println!("{}", webhook.secret.as_ref().map_or("", |s| s.expose()));
            eprintln!(
                "webhook {} of {} to {} ({}); the secret above is shown only now",
                webhook.id,
                shown(&webhook.tenant),
                shown(&webhook.url),
                webhook.events.join(",")
            );
        }
        WebhookCommand::List { tenant } => {
            let webhooks = client.webhooks(tenant.as_deref()).await?;
            if args.json {
                return args.print_json(&webhooks);
            }
            for w in webhooks {
                println!(
                    "{:>6}  {:<20} {}  {}",
                    w.id,
                    shown(&w.tenant),
                    shown(&w.url),
                    w.events.join(",")
                );
            }
        }
        WebhookCommand::Remove { id } => {
            client.remove_webhook(*id).await?;
            println!("webhook {id} removed");
        }
        WebhookCommand::Deliveries { tenant, limit } => {
            let deliveries = client.webhook_deliveries(tenant.as_deref(), *limit).await?;
            if args.json {
                return args.print_json(&deliveries);
            }
            for d in deliveries {
                let last = match (d.last_status, &d.last_error) {
                    (_, Some(error)) => shown(error).into_owned(),
                    (Some(status), None) => status.to_string(),
                    (None, None) => String::new(),
                };
                println!(
                    "{:<12} {:>5}  {:<12} {:<10} {:>2} attempt(s)  {}  {}  {}",
                    d.id,
                    d.webhook_id,
                    d.event,
                    d.status,
                    d.attempts,
                    when(d.occurred_at),
                    shown(&d.key),
                    last
                );
            }
        }
    }
    Ok(())
}
