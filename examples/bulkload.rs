//! Loads synthetic keys straight into a CA's SQLite store, for scale tests (inventory of
//! millions of keys, a CRL of a million entries, start-up time and memory). Loopback-free:
//! it touches only the database file. Run it with the CA stopped.
//!
//! ```text
//! cargo run --release --example bulkload -- --home certs --keys 10000000 [--revoke-every 1]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use latchkey::store::{AuditEvent, Store};

#[derive(Debug, Parser)]
struct Args {
    /// The CA home (its `latchkey.db` is loaded).
    #[arg(long, default_value = "certs")]
    home: PathBuf,
    /// How many keys to add, each with one certificate.
    #[arg(long)]
    keys: i64,
    /// Revoke every N-th key and its certificate (0: none).
    #[arg(long, default_value = "0")]
    revoke_every: i64,
    /// The tenant to load into (made if missing).
    #[arg(long, default_value = "bulk")]
    tenant: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let database = args.home.join("latchkey.db");
    if !database.exists() {
        return Err(format!("no CA store at {}", database.display()).into());
    }
    let store = Store::connect(&latchkey::store::sqlite_url(&database)).await?;
    let now = time::OffsetDateTime::now_utc();
    let name: latchkey::model::TenantName = args.tenant.parse()?;
    let tenant = match store.tenant(&name).await? {
        Some(tenant) => tenant,
        None => {
            let event = AuditEvent {
                at: now,
                actor: "system:bulkload".into(),
                action: "tenant.add",
                tenant: Some(args.tenant.clone()),
                target: None,
                detail: serde_json::json!({ "synthetic": true }),
            };
            store.insert_tenant(&name, 3650, now, &event).await?
        }
    };
    // Ids count up from past what earlier loads used; ids of issued keys are random.
    let first = 1 << 40 | store.row_counts().await?["keys"];
    let started = Instant::now();
    store
        .load_synthetic_keys(tenant.id, first, args.keys, args.revoke_every, now)
        .await?;
    println!(
        "{{\"keys\":{},\"revoke_every\":{},\"seconds\":{:.1}}}",
        args.keys,
        args.revoke_every,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(())
}
