//! The `hashforum` binary: parses the command line and hands over to `hashforum::cli`.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: the write path allocates on request threads and
/// frees on the sequencer thread, which glibc's per-thread arenas handle poorly.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Named, so that `top -H`, `perf` and `hashforum bench` can tell signature checks apart
    // from the async runtime's threads. Fails only if the pool already exists.
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("rayon-{i}"))
        .build_global();
    let cli = hashforum::cli::Cli::parse_args();
    // A server logs each call (`hashforum::call`); commands that serve in process for
    // themselves (`bench`, `--local` queries) do not.
    let default = match cli.command {
        hashforum::cli::Command::Serve(_) => "warn,hashforum=info",
        _ => "warn,hashforum=info,hashforum::call=off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        hashforum::cli::LogFormat::Text => logs.init(),
        hashforum::cli::LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    match hashforum::cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            hashforum::cli::report_error(&err);
            ExitCode::FAILURE
        }
    }
}
