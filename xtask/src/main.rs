//! Project automation, reached as `cargo xtask <command>` through the alias in `.cargo/config.toml`.
//!
//! - `cargo xtask test`: every test of the workspace (unit, integration, doc), then `test-e2e`: the
//!   README's test command.
//! - `cargo xtask test-e2e [--list] [NAME...]`: the release binary between real third-party clients
//!   and backends (curl, nghttp2, hypercorn, nginx, websockets, Autobahn|Testsuite; `e2e/`).
//! - `cargo xtask e2e-deps`: installs what `test-e2e` needs (Debian and PyPI packages; apt needs root).
//! - `cargo xtask lint`: `cargo fmt --check`, clippy with warnings denied, and rustdoc with warnings
//!   denied, on the workspace and on the fuzz targets (`fuzz/`, outside the workspace).
//! - `cargo xtask ci`: `test` then `lint`, as `.ci/run` does after installing the system packages.
//! - `cargo xtask bench [--quick] [--scenario NAME]`: the proxy against nginx and HAProxy (`bench/`).

mod bench;
mod e2e;
mod ports;

use std::env;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("test-e2e") => e2e::test_e2e(&args[1..]),
        Some("e2e-deps") => e2e::deps::install(),
        Some("lint") => lint(),
        Some("ci") => test().and_then(|()| lint()),
        Some("bench") => bench::run(&args[1..]),
        Some(other) => Err(format!("unknown command `{other}`\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "usage: cargo xtask <test | test-e2e [--list] [NAME...] | e2e-deps | lint | ci \
                     | bench [--quick] [--scenario NAME]>";

fn test() -> Result<(), String> {
    cargo(&["test", "--workspace", "--all-features"])?;
    // The benchmarks are part of the workspace's contract: make sure they still build and run once.
    cargo(&["test", "--workspace", "--benches"])?;
    e2e::test_e2e(&[])
}

fn lint() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    run(Command::new(cargo_bin())
        .args(["doc", "--no-deps", "--workspace"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    // The fuzz targets live outside the workspace (docs/fuzzing.md); running them takes nightly,
    // but they are kept compiling and clean on the stable toolchain here.
    let fuzz = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/Cargo.toml");
    cargo(&["fmt", "--manifest-path", fuzz, "--", "--check"])?;
    cargo(&[
        "clippy",
        "--manifest-path",
        fuzz,
        "--bins",
        "--",
        "-D",
        "warnings",
    ])
}

fn cargo_bin() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn cargo(args: &[&str]) -> Result<(), String> {
    run(Command::new(cargo_bin()).args(args))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}
