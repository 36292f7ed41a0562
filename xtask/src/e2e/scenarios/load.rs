//! Load and lifecycle: h2load bursts, and the SIGTERM drain of a proxy of its own.

use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::{Env, ensure, tmp};
use crate::e2e::proc::{self, Proc};
use crate::e2e::setup::start_proxy;

/// Requests per burst.
const BURST: usize = 10_000;

/// H2-1, POOL-1, POOL-4: 10 000 requests per burst, 10 clients with 10 streams each, through h2c,
/// TLS h2 and HTTP/1.1, to nginx over HTTP/1.1 and h2c: every one must succeed with a 2xx.
pub(crate) fn burst(env: &Env) -> Result<String, String> {
    let n = BURST.to_string();
    let plain = format!("http://{}", env.plain);
    let tls = format!("https://{}", env.tls);
    let runs: [(&str, Vec<&str>, String); 4] = [
        (
            "h2c -> nginx h1",
            vec!["-c", "10", "-m", "10"],
            format!("{plain}/nginx/hello"),
        ),
        (
            "h2c -> nginx h2c",
            vec!["-c", "10", "-m", "10"],
            format!("{plain}/nginx-h2c/hello"),
        ),
        (
            "tls h2 -> nginx h1",
            vec!["-c", "10", "-m", "10"],
            format!("{tls}/nginx/hello"),
        ),
        (
            "h1 -> nginx h1",
            vec!["--h1", "-c", "10"],
            format!("{plain}/nginx/hello"),
        ),
    ];
    let mut notes = Vec::new();
    for (what, opts, url) in &runs {
        let out = proc::run(
            Command::new("h2load")
                .args(["-n", &n, "-t", "1"])
                .args(opts)
                .arg(url),
            Duration::from_secs(60),
        )?;
        let text = out.stdout_str();
        let want_done = format!("{BURST} succeeded, 0 failed, 0 errored, 0 timeout");
        let want_2xx = format!("status codes: {BURST} 2xx");
        let summary = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with("requests:") || l.starts_with("status codes:"))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        ensure(
            out.status.success() && text.contains(&want_done) && text.contains(&want_2xx),
            || format!("{what}: {} {}", summary(&text), out.stderr_str().trim()),
        )?;
        let rate = text
            .lines()
            .find(|l| l.starts_with("finished in"))
            .and_then(|l| l.split(", ").nth(1))
            .unwrap_or("?")
            .to_owned();
        println!("    {what}: {BURST} 2xx, {rate}");
        notes.push(format!("{what} {rate}"));
    }
    Ok(notes.join("; "))
}

/// cli.md: on SIGTERM the proxy stops accepting, lets the request in flight finish, and exits 0.
pub(crate) fn sigterm_drain(env: &Env) -> Result<String, String> {
    let log = env.logs().join("proxy-drain.log");
    let (mut proxy, addr) = start_proxy(&env.bin, &env.config, &log, "proxy-drain")?;
    let url = format!("http://{addr}/h1/slow?ms=2000");
    let out_log = tmp(env, "drain-curl.log")?;
    let mut slow = Proc::spawn(
        "curl slow",
        Command::new("curl").args(["-sS", "--max-time", "20", &url]),
        &out_log,
        true,
    )?;
    let lines = proc::lines(slow.stdout().expect("stdout was piped"));
    // Let the request reach the backend before the signal.
    thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    proc::signal(proxy.pid(), "TERM");
    thread::sleep(Duration::from_millis(200));
    ensure(TcpStream::connect(addr).is_err(), || {
        "still accepting connections after SIGTERM".into()
    })?;
    let status = slow.wait_for(Duration::from_secs(10));
    let body: Vec<String> = lines.try_iter().map(|(_, l)| l).collect();
    ensure(
        status.is_some_and(|s| s.success()) && body == ["slept 2000"],
        || {
            format!(
                "the request in flight got {body:?} (curl {status:?}: {})",
                proc::tail(&out_log, 3)
            )
        },
    )?;
    let exit = proxy.wait_for(Duration::from_secs(10));
    ensure(exit.is_some_and(|s| s.code() == Some(0)), || {
        format!(
            "the proxy ended with {exit:?} after SIGTERM:\n{}",
            proxy.log_tail()
        )
    })?;
    Ok(format!(
        "in-flight request completed, exit 0 {:.1}s after SIGTERM",
        signalled.elapsed().as_secs_f64()
    ))
}
