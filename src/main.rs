//! The `hashforum` binary: parses the command line and hands over to `hashforum::cli`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the write path allocates on request threads and
/// frees on the sequencer thread, which glibc's per-thread arenas handle poorly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,hashforum=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = hashforum::cli::Cli::parse();
    match hashforum::cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            hashforum::cli::report_error(&err);
            ExitCode::FAILURE
        }
    }
}
