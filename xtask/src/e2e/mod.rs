//! `cargo xtask test-e2e`: the release binary between real third-party clients and backends.
//!
//! The runner builds `target/release/reverseit`, starts the shared set-up ([`setup`]), then runs each
//! scenario on its own thread with its own timeout. Every child process is tracked by PID: those a
//! scenario started are killed when it times out, and everything is ended when the run ends, on an
//! error or a panic too. Scenarios whose tools are missing are reported SKIPPED with the install
//! command; under `CI=true` such a skip counts as a failure (`.ci/run` runs `e2e-deps` first). The
//! last line is `e2e: N passed, M failed[, K skipped]`, and the exit is non-zero on any failure.
//!
//! `cargo xtask test-e2e [NAME...]` runs only the scenarios whose name contains one of the words;
//! `cargo xtask test-e2e --list` lists them with their catalogue ids.

// A plain blocking program with no tokio clock to pause: the workspace's ban on
// `std::time::Instant` and `std::thread::sleep` (clippy.toml) is for library code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

pub(crate) mod deps;
mod proc;
mod recorder;
mod scenarios;
mod setup;

use std::env;
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use deps::{Paths, Tool, Tools};
use proc::Scope;
use setup::Env;

/// One end-to-end scenario.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// The catalogue ids (or interface pages) it checks.
    pub(crate) ids: &'static [&'static str],
    pub(crate) needs: &'static [Tool],
    pub(crate) timeout: Duration,
    /// Ok with a one-line note for the summary, or Err with what went wrong.
    pub(crate) run: fn(&Env) -> Result<String, String>,
}

#[derive(Debug)]
enum Outcome {
    Pass(String),
    Fail(String),
    /// Skipped; `true` when it still counts as a failure (a missing tool under `CI=true`).
    Skip(String, bool),
}

/// `cargo xtask test-e2e [--list] [NAME...]`.
pub(crate) fn test_e2e(args: &[String]) -> Result<(), String> {
    let all = scenarios::all();
    if args.iter().any(|a| a == "--list") {
        for s in &all {
            println!("{:<28} {}", s.name, s.ids.join(" "));
        }
        return Ok(());
    }
    let chosen: Vec<&Scenario> = all
        .iter()
        .filter(|s| args.is_empty() || args.iter().any(|a| s.name.contains(a.as_str())))
        .collect();
    if chosen.is_empty() {
        return Err(format!("no scenario matches {args:?} (see --list)"));
    }
    let ci = env::var("CI").is_ok_and(|v| v == "true");
    let started = Instant::now();

    build_release()?;
    let paths = Paths::new();
    std::fs::create_dir_all(paths.work.join("logs"))
        .map_err(|e| format!("{}: {e}", paths.work.display()))?;
    let tools = Tools::detect(&paths);
    let bin = paths.root.join("target").join("release").join("reverseit");

    let set_up = Instant::now();
    let setup_scope = Scope::default();
    proc::enter(setup_scope.clone());
    let env = match setup::start(paths, tools, bin) {
        Ok(env) => Arc::new(env),
        Err(e) => {
            setup_scope.kill_all();
            println!("e2e: set-up failed: {e}");
            println!("e2e: 0 passed, {} failed", chosen.len());
            return Err("the end-to-end set-up failed".into());
        }
    };
    println!(
        "e2e: set-up done in {:.1}s (proxy {} and {}, logs in {})",
        set_up.elapsed().as_secs_f64(),
        env.plain,
        env.tls,
        env.logs().display()
    );

    let mut results = Vec::new();
    for s in &chosen {
        let t = Instant::now();
        let outcome = run_one(s, &env, ci);
        let took = t.elapsed();
        match &outcome {
            Outcome::Pass(note) => {
                println!("PASS    {} ({:.1}s) {note}", s.name, took.as_secs_f64())
            }
            Outcome::Fail(why) => {
                println!("FAIL    {} ({:.1}s): {why}", s.name, took.as_secs_f64())
            }
            Outcome::Skip(why, _) => println!("SKIPPED {}: {why}", s.name),
        }
        results.push((s, outcome, took));
    }
    env.stop();

    println!();
    println!(
        "e2e summary ({:.0}s in all):",
        started.elapsed().as_secs_f64()
    );
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (s, outcome, took) in &results {
        let (word, detail) = match outcome {
            Outcome::Pass(note) => {
                passed += 1;
                ("PASS", note.clone())
            }
            Outcome::Fail(why) => {
                failed += 1;
                ("FAIL", why.lines().next().unwrap_or("").to_owned())
            }
            Outcome::Skip(why, counts) => {
                if *counts {
                    failed += 1;
                    ("SKIPPED (a failure under CI=true)", why.clone())
                } else {
                    skipped += 1;
                    ("SKIPPED", why.clone())
                }
            }
        };
        println!(
            "  {word:<7} {:<22} [{}] {:.1}s  {detail}",
            s.name,
            s.ids.join(", "),
            took.as_secs_f64()
        );
    }
    if skipped > 0 {
        println!("e2e: {passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("e2e: {passed} passed, {failed} failed");
    }
    if failed > 0 {
        Err(format!("{failed} end-to-end scenario(s) failed"))
    } else {
        Ok(())
    }
}

fn run_one(s: &Scenario, env: &Arc<Env>, ci: bool) -> Outcome {
    for tool in s.needs {
        if let Some(why) = env.tools.missing(*tool) {
            let counts = ci && !env.tools.beyond_our_control(*tool);
            return Outcome::Skip(format!("needs {tool}: {why}"), counts);
        }
    }
    println!(
        "--- {} [{}] (timeout {}s)",
        s.name,
        s.ids.join(", "),
        s.timeout.as_secs()
    );
    let scope = Scope::default();
    let (tx, rx) = mpsc::channel();
    let run = s.run;
    let thread_env = Arc::clone(env);
    let thread_scope = scope.clone();
    let spawned = thread::Builder::new()
        .name(s.name.to_owned())
        .spawn(move || {
            proc::enter(thread_scope);
            let _ = tx.send(run(&thread_env));
        });
    if let Err(e) = spawned {
        return Outcome::Fail(format!("cannot start a thread: {e}"));
    }
    let outcome = match rx.recv_timeout(s.timeout) {
        Ok(Ok(note)) => Outcome::Pass(note),
        Ok(Err(why)) => Outcome::Fail(why),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Killing what it started unblocks it; its result no longer matters.
            scope.kill_all();
            let _ = rx.recv_timeout(Duration::from_secs(5));
            Outcome::Fail(format!("timed out after {}s", s.timeout.as_secs()))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Outcome::Fail("panicked".into()),
    };
    scope.kill_all();
    // A scenario must leave the shared proxies and backends running.
    match (outcome, env.services_alive()) {
        (Outcome::Pass(_), Err(e)) => Outcome::Fail(format!("a shared service died: {e}")),
        (outcome, _) => outcome,
    }
}

fn build_release() -> Result<(), String> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--package",
        "reverseit",
        "--bin",
        "reverseit",
    ]);
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
