//! `reverseit`: the standalone ReverseIt proxy (`cli.md`).
//!
//! Parses the command line, resolves the configuration, runs the server, and maps the outcome to
//! the exit code: 0 after a shutdown by signal (or a successful `--check`), 2 for bad arguments or
//! a bad configuration, 1 for a runtime failure such as a port already in use.

mod access_log;
mod alloc;
mod cli;
mod demo;
mod file;
mod idle;
mod router;
mod server;
mod settings;
mod signal;
mod tls;
mod wake_gate;

use std::io::{BufWriter, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::server::RunError;

/// See [`alloc`] for why and how.
#[global_allocator]
static ALLOCATOR: alloc::MiMalloc = alloc::MiMalloc;

/// Exit code for bad arguments or configuration (clap uses the same for usage errors).
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure at run time.
const EXIT_RUNTIME: u8 = 1;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let (log_out, logs) = init_logs();
    let outcome = run(&args, log_out);
    // Every log line out (the writer thread drains its queue) before the error message and exit.
    drop(logs);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

/// Everything `main` does between the logs' start and end: the exit code and message of a failure.
fn run(args: &cli::Args, log_out: NonBlocking) -> Result<(), (u8, String)> {
    let settings = settings::resolve(args).map_err(|e| (EXIT_CONFIG, e.to_string()))?;
    if args.check {
        if let Some(path) = &args.config {
            println!("{}: ok ({} routes)", path.display(), settings.routes.len());
        }
        return Ok(());
    }

    let runtime = runtime_builder().enable_all().build().map_err(|e| {
        (
            EXIT_RUNTIME,
            format!("error: cannot start the runtime: {e}"),
        )
    })?;
    let outcome = runtime.block_on(server::run(settings, Box::new(log_out)));
    // Tasks still running (requests cut off by `shutdown_timeout`) are dropped here, not awaited.
    runtime.shutdown_timeout(Duration::from_millis(100));
    outcome.map_err(|e| match e {
        RunError::Config(e) => (EXIT_CONFIG, e.to_string()),
        RunError::Io(e) => (EXIT_RUNTIME, format!("error: {e}")),
    })
}

/// tokio's multi-threaded scheduler, one worker per CPU the process may run on; on a single CPU
/// (a process pinned to one core, as a proxy often is, one per core) the current-thread scheduler,
/// which does the same work without the cross-worker bookkeeping: callgrind, one core, user-space
/// instructions per request: keep-alive GET −3.9 %, h2c −2.4 %, new connection −2.5 %, WebSocket
/// echo −4.3 %.
fn runtime_builder() -> tokio::runtime::Builder {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
}

/// Logs on stderr; `RUST_LOG` sets the filter, `info` by default (which includes the access log).
///
/// Lines are formatted where they happen but written by a thread of their own, which writes what
/// has queued up since its last write in one system call: with the access log on, a write per
/// request cost about a sixth of a small request's CPU time. The queue is bounded, and when it is
/// full (stderr is a pipe nobody reads, a terminal scrolled back) lines are dropped rather than
/// stalling the proxy: traffic comes before its log.
fn init_logs() -> (NonBlocking, WorkerGuard) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_LINES_QUEUED)
        .thread_name("reverseit-log")
        .finish(BufWriter::with_capacity(LOG_WRITE_BYTES, std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        // Colours only for a person at a terminal, not in files or log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    (writer, guard)
}

/// Writes waiting for the writer thread at most: a line each, or a batch of access-log lines of at
/// most `access_log::BATCH_BYTES`, so about 32 MiB at most when stderr takes nothing.
const LOG_LINES_QUEUED: usize = 1024;
/// The most the writer thread writes in one system call.
const LOG_WRITE_BYTES: usize = 64 * 1024;
