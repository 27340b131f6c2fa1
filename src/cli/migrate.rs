//! `latchkey migrate`: moves a CA's store (by default the embedded SQLite) into an empty
//! PostgreSQL database, verifying the copy, so that several replicas can share it. Stop the
//! CA first: writes made during the copy would not be in it.

use anyhow::{Context, Result, bail};
use clap::Parser;
use latchkey::store::{Store, sqlite_url};

use super::Args;

#[derive(Debug, Parser)]
pub struct MigrateArgs {
    /// The source store (default: the CA home's SQLite database).
    #[arg(long)]
    from: Option<String>,
    /// The target: an empty PostgreSQL database (`postgres://…`).
    #[arg(long)]
    to: String,
}

pub async fn migrate(args: &Args, migrate: &MigrateArgs) -> Result<()> {
    if !migrate.to.starts_with("postgres://") && !migrate.to.starts_with("postgresql://") {
        bail!("--to must be a postgres:// URL");
    }
    let from = match &migrate.from {
        Some(url) => url.clone(),
        None => {
            let path = args.home.join("latchkey.db");
            if !path.exists() {
                bail!("no database at {}; give --from or --home", path.display());
            }
            sqlite_url(&path)
        }
    };
    let source = Store::connect(&from)
        .await
        .context("cannot open the source store")?;
    let target = Store::connect(&migrate.to)
        .await
        .context("cannot open the target store")?;
    let counts = source.copy_into(&target).await?;
    source.close().await;
    target.close().await;
    println!("copied and verified:");
    for (table, n) in &counts {
        println!("  {table:<20} {n}");
    }
    println!(
        "next: start every replica with --database-url {} and a copy of the same --home",
        migrate.to
    );
    Ok(())
}
