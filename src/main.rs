//! `latchkey`: the CA server and its command-line client.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    keep_large_allocations_out_of_arenas();
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every password check allocates argon2id's 19 MiB work area on whichever blocking thread
/// runs it. glibc raises its mmap threshold to the size of the largest block freed, so
/// after the first check those areas come from per-thread arenas and stay resident after
/// they are freed: the CA's memory would grow with the number of threads that ever checked
/// a password, not with what it holds. A fixed threshold keeps such blocks mmapped, so they
/// go back to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(
    unsafe_code,
    reason = "glibc's mallopt has no safe wrapper; the one unsafe call"
)]
fn keep_large_allocations_out_of_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_out_of_arenas() {}
