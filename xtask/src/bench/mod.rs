//! `cargo xtask bench [--quick] [--scenario NAME,…] [--proxies NAME,…] [--rounds N] [--secs N]`:
//! reverseit against no proxy, nginx (buffering on and off) and HAProxy, in the same run (issue 8).
//!
//! The backends (nginx for HTTP, this program's WebSocket echo server) and the load generators
//! (wrk, h2load, this program's WebSocket clients) share core 0; the proxy under test runs alone on
//! core 1 and is started afresh for every measurement, so its peak RSS belongs to that scenario.
//! Rounds interleave every scenario and proxy, so drift on a shared machine hits all alike; each
//! figure is the median over the rounds. Proxy CPU time comes from `/proc/PID/stat` (user + system,
//! every thread) around the measured load, after a warm-up that also opens the backend connections.
//!
//! A full run writes its table, the machine and the command to `docs/benchmarks.md` (between
//! markers, keeping the notes around them); `--quick` runs each scenario once for two seconds, for CI
//! smoke, and writes `target/bench/quick.md` instead. Every process is killed by its PID when its
//! measurement ends, and on any error or panic.

// The bans in `clippy.toml` are for library code, whose timers must follow tokio's paused test clock.
// This is a command-line tool timing real processes from plain threads: wall-clock time is the point.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod load;
mod peers;
mod procs;
mod report;
mod ws;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use load::Wrk;
use peers::{Backends, Env, Proxy};
use procs::PROXY_CORE;
use report::{Results, Sample};

/// The scenarios, in the order they run within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// HTTP/1.1 keep-alive GET of 100 bytes, 64 connections.
    Small,
    /// HTTP/1.1 keep-alive GET of a 64 KiB static file, 64 connections.
    Large,
    /// HTTP/1.1 POST of 1 MiB, 16 connections.
    Post,
    /// HTTP/2 clients (16 connections × 10 streams) to the HTTP/1.1 backend.
    H2c,
    /// A new connection per request (`Connection: close`), 64 connections.
    NewConn,
    /// WebSocket echo of 64-byte messages, 64 connections, one message in flight on each.
    WsEcho,
    /// Memory per idle WebSocket connection.
    WsIdle,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::Small,
        Scenario::Large,
        Scenario::Post,
        Scenario::H2c,
        Scenario::NewConn,
        Scenario::WsEcho,
        Scenario::WsIdle,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Small => "small",
            Scenario::Large => "64k",
            Scenario::Post => "post-1m",
            Scenario::H2c => "h2c",
            Scenario::NewConn => "new-conn",
            Scenario::WsEcho => "ws-echo",
            Scenario::WsIdle => "ws-idle",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::Small => "HTTP/1.1 keep-alive GET, 100-byte response (wrk, 64 connections)",
            Scenario::Large => "HTTP/1.1 keep-alive GET, 64 KiB static file (wrk, 64 connections)",
            Scenario::Post => "HTTP/1.1 POST of 1 MiB, 2-byte response (wrk, 16 connections)",
            Scenario::H2c => {
                "HTTP/2 clients, prior knowledge, 100-byte GET, to the HTTP/1.1 backend \
                 (h2load, 16 connections × 10 streams)"
            }
            Scenario::NewConn => {
                "a new client connection per request (`Connection: close`), 100-byte GET \
                 (wrk, 64 connections)"
            }
            Scenario::WsEcho => {
                "WebSocket echo round trips, 64-byte messages (64 connections, one message in \
                 flight each)"
            }
            Scenario::WsIdle => {
                "proxy memory per idle WebSocket connection (RSS delta over the last 2 000 \
                 connections)"
            }
        }
    }

    pub(crate) fn unit(self) -> &'static str {
        match self {
            Scenario::WsEcho => "msg/s",
            _ => "req/s",
        }
    }

    fn wrk(self) -> Option<Wrk<'static>> {
        let get = |path, connections| Wrk {
            path,
            connections,
            post: false,
            close: false,
        };
        match self {
            Scenario::Small => Some(get("/small", 64)),
            Scenario::Large => Some(get("/64k.bin", 64)),
            Scenario::Post => Some(Wrk {
                post: true,
                ..get("/post", 16)
            }),
            Scenario::NewConn => Some(Wrk {
                close: true,
                ..get("/small", 64)
            }),
            Scenario::H2c | Scenario::WsEcho | Scenario::WsIdle => None,
        }
    }
}

/// Idle WebSocket connections measured (after [`IDLE_WARM`] opened first, so start-up allocations do
/// not count).
const IDLE_CONNECTIONS: usize = 2000;
const IDLE_WARM: usize = 100;

#[derive(Debug)]
struct Options {
    quick: bool,
    scenarios: Vec<Scenario>,
    proxies: Vec<Proxy>,
    rounds: usize,
    warmup: f64,
    secs: f64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        scenarios: Scenario::ALL.to_vec(),
        proxies: Proxy::ALL.to_vec(),
        rounds: 3,
        warmup: 1.0,
        secs: 5.0,
    };
    let (mut rounds, mut secs) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--scenario" | "--scenarios" => {
                o.scenarios = value()?
                    .split(',')
                    .map(|n| {
                        Scenario::ALL
                            .into_iter()
                            .find(|s| s.name() == n)
                            .ok_or_else(|| format!("unknown scenario `{n}` ({})", names()))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--proxies" => {
                o.proxies = value()?
                    .split(',')
                    .map(|n| {
                        Proxy::ALL
                            .into_iter()
                            .find(|p| p.key() == n)
                            .ok_or_else(|| format!("unknown proxy `{n}`"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--rounds" => rounds = Some(value()?.parse().map_err(|e| format!("--rounds: {e}"))?),
            "--secs" => secs = Some(value()?.parse().map_err(|e| format!("--secs: {e}"))?),
            other => return Err(format!("bench: unknown option `{other}`\n{USAGE}")),
        }
    }
    if o.quick {
        o.rounds = 1;
        o.secs = 2.0;
    }
    o.rounds = rounds.unwrap_or(o.rounds).max(1);
    o.secs = secs.unwrap_or(o.secs).max(1.0);
    Ok(o)
}

fn names() -> String {
    Scenario::ALL.map(Scenario::name).join(", ")
}

const USAGE: &str = "usage: cargo xtask bench [--quick] [--scenario NAME,…] \
                     [--proxies direct,reverseit,nginx,nginx-unbuffered,haproxy] [--rounds N] [--secs N]";

/// Runs `cargo xtask bench …` (or one of the internal peers: `ws-echo`, `ws-load`, `ws-idle`).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let number = |i: usize| -> Result<f64, String> {
        arg(i)
            .parse()
            .map_err(|e| format!("argument {i} `{}`: {e}", arg(i)))
    };
    match arg(0) {
        "ws-echo" => ws::echo(arg(1)),
        "ws-load" => ws::load(
            arg(1),
            number(2)?,
            number(3)?,
            args.get(4).map_or(Ok(ws::MESSAGE as f64), |_| number(4))? as usize,
        ),
        "ws-idle" => ws::idle(arg(1), number(2)? as usize, number(3)? as usize),
        _ => bench(&parse(args)?, args),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn bench(o: &Options, args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let missing: Vec<&str> = ["nginx", "haproxy", "wrk", "h2load", "taskset"]
        .into_iter()
        .filter(|p| procs::find(p).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing {} (Debian: apt-get install nginx-light haproxy wrk nghttp2-client util-linux)",
            missing.join(", ")
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if cores <= PROXY_CORE {
        return Err(format!("needs at least 2 cores, found {cores}"));
    }

    let root = root();
    // The WebSocket echo backend and clients are this program: built with optimizations too, so
    // that they, not the proxy, are never what runs out of CPU.
    eprintln!("bench: building reverseit and the WebSocket peers (release)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-p",
            "reverseit",
            "-p",
            "xtask",
            "--bins",
        ])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --release failed: {status}"));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let dir = target.join("bench").join("run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let env = Env {
        dir,
        reverseit: target.join("release").join("reverseit"),
        xtask: target.join("release").join("xtask"),
    };
    let backends = peers::start_backends(&env)?;
    let clk = procs::clk_tck();
    let mut results: Results = o
        .scenarios
        .iter()
        .map(|s| (*s, o.proxies.iter().map(|p| (*p, Vec::new())).collect()))
        .collect();
    let mut errors = Vec::new();
    for round in 0..o.rounds {
        for (scenario, proxies) in &mut results {
            // Rotate the order every round, so no proxy always runs first or last.
            let n = proxies.len();
            for k in 0..n {
                let (proxy, samples) = &mut proxies[(k + round) % n];
                if *scenario == Scenario::WsIdle && *proxy == Proxy::Direct {
                    continue;
                }
                eprint!(
                    "bench: round {}/{} {:<9} {:<22}",
                    round + 1,
                    o.rounds,
                    scenario.name(),
                    proxy.name()
                );
                match measure(*scenario, *proxy, o, &env, &backends, clk) {
                    Ok(sample) => {
                        eprintln!("{}", brief(&sample));
                        samples.push(sample);
                    }
                    Err(e) => {
                        eprintln!("FAILED");
                        errors.push(format!("{} / {}: {e}", scenario.name(), proxy.name()));
                    }
                }
            }
        }
    }
    drop(backends);

    let tables = report::tables(&results);
    let mut doc = String::new();
    let _ = write!(
        doc,
        "Command: `cargo xtask bench{}{}` ({} round{} of {} s per scenario and proxy, medians; run \
         took {:.0} s).\n\n",
        if args.is_empty() { "" } else { " " },
        args.join(" "),
        o.rounds,
        if o.rounds == 1 { "" } else { "s" },
        o.secs,
        started.elapsed().as_secs_f64(),
    );
    doc.push_str(&machine(&root));
    doc.push_str("\nScenarios:\n\n");
    for s in &o.scenarios {
        let _ = writeln!(doc, "- `{}`: {}", s.name(), s.describe());
    }
    doc.push('\n');
    doc.push_str(&tables);
    println!("\n{tables}");
    let out =
        if o.quick || o.scenarios.len() < Scenario::ALL.len() || o.proxies.len() < Proxy::ALL.len()
        {
            target.join("bench").join("partial.md")
        } else {
            root.join("docs").join("benchmarks.md")
        };
    report::write_doc(&out, &doc)?;
    eprintln!("bench: wrote {}", out.display());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} measurement(s) failed:\n{}",
            errors.len(),
            errors.join("\n")
        ))
    }
}

fn brief(s: &Sample) -> String {
    match s {
        Sample::Load {
            load, cpu_per_10k, ..
        } => format!(
            "{:>9.0}/s  p99 {:>7.3} ms  cpu/10k {}",
            load.per_sec(),
            load.p99_ms,
            cpu_per_10k.map_or("—".into(), |c| format!("{:.1} ms", c * 1e3))
        ),
        Sample::Idle {
            kib_per_connection, ..
        } => format!("{kib_per_connection:.1} KiB per idle connection"),
    }
}

/// One measurement: a fresh proxy, a warm-up, the measured load with the proxy's CPU time around it.
fn measure(
    scenario: Scenario,
    proxy: Proxy,
    o: &Options,
    env: &Env,
    backends: &Backends,
    clk: f64,
) -> Result<Sample, String> {
    let mut running = peers::start(proxy, env, backends)?;
    let pid = running.proc.as_ref().map(procs::Proc::pid);
    let cpu = |pid: Option<u32>| -> Result<Option<f64>, String> {
        pid.map(|p| procs::cpu_seconds(p, clk)).transpose()
    };
    let port = match scenario {
        Scenario::H2c => running.ports.h2c,
        Scenario::WsEcho | Scenario::WsIdle if proxy == Proxy::Direct => backends.ws,
        _ => running.ports.http1,
    };
    let (load, before, after) = if let Some(wrk) = scenario.wrk() {
        wrk.run(env, port, o.warmup)?;
        let before = cpu(pid)?;
        let load = wrk.run(env, port, o.secs)?;
        (load, before, cpu(pid)?)
    } else if scenario == Scenario::H2c {
        load::h2load(env, port, "/small", o.warmup)?;
        let before = cpu(pid)?;
        let load = load::h2load(env, port, "/small", o.secs)?;
        (load, before, cpu(pid)?)
    } else if scenario == Scenario::WsEcho {
        let mut marks = Vec::new();
        let load = load::websocket(env, port, o.warmup, o.secs, || {
            marks.push(cpu(pid)?);
            Ok(())
        })?;
        (load, marks[0], marks[1])
    } else {
        let pid = pid.ok_or("no proxy to measure")?;
        let mut rss = Vec::new();
        let warm = if o.quick { 20 } else { IDLE_WARM };
        let count = if o.quick { 500 } else { IDLE_CONNECTIONS };
        load::websocket_idle(env, port, warm, count, || {
            rss.push(procs::status_kib(pid, "VmRSS")?);
            Ok(())
        })?;
        if let Some(p) = running.proc.as_mut() {
            p.check_alive()?;
        }
        return Ok(Sample::Idle {
            kib_per_connection: rss[1].saturating_sub(rss[0]) as f64 / count as f64,
            rss_kib: rss[1],
            connections: count,
        });
    };
    let peak_rss_kib = pid.map(|p| procs::status_kib(p, "VmHWM")).transpose()?;
    if let Some(p) = running.proc.as_mut() {
        p.check_alive()?;
    }
    let cpu_per_10k = match (before, after) {
        (Some(b), Some(a)) => Some((a - b) / load.requests as f64 * 10_000.0),
        _ => None,
    };
    Ok(Sample::Load {
        load,
        cpu_per_10k,
        peak_rss_kib,
    })
}

/// The machine and software versions, for the report.
fn machine(root: &Path) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or("?".into(), |k| format!("{} GiB", k / 1024 / 1024));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let date = procs::first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    format!(
        "Machine: {cores} cores ({cpu}), {mem}, Linux {kernel}; {date}; reverseit at `{commit}` \
         ({rustc}).\nPeers: {nginx}; {haproxy}; {wrk}; {h2load}. The proxy under test runs alone \
         on core {PROXY_CORE} (`taskset`); backends and load generators share core {load}.\n",
        kernel = procs::first_line("uname", &["-r"]),
        rustc = procs::first_line("rustc", &["--version"]),
        nginx = procs::first_line("nginx", &["-v"]),
        haproxy = procs::first_line("haproxy", &["-v"]),
        wrk = procs::first_line("wrk", &["-v"])
            .split(" Copyright")
            .next()
            .unwrap_or("")
            .to_owned(),
        h2load = procs::first_line("h2load", &["--version"]),
        load = procs::LOAD_CORE,
    )
}
