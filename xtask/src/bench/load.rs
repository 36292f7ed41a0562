//! The load generators, pinned to the load core: wrk for HTTP/1.1, h2load for HTTP/2 clients, and
//! this program's own WebSocket clients. Each run reports requests done, throughput and latency.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::peers::{Env, POST_BODY};
use super::procs::{self, LOAD_CORE, Proc};

/// What one load run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Requests (or WebSocket round trips) completed.
    pub(crate) requests: u64,
    /// Seconds the load ran.
    pub(crate) secs: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

impl Load {
    pub(crate) fn per_sec(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// An HTTP/1.1 load: wrk with one thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wrk<'a> {
    pub(crate) path: &'a str,
    pub(crate) connections: usize,
    /// POST [`POST_BODY`] bytes instead of GET.
    pub(crate) post: bool,
    /// `Connection: close`: a new connection per request.
    pub(crate) close: bool,
}

impl Wrk<'_> {
    /// Runs wrk against `port` for `secs` seconds.
    pub(crate) fn run(&self, env: &Env, port: u16, secs: f64) -> Result<Load, String> {
        let mut cmd = procs::pinned(LOAD_CORE, "wrk");
        cmd.args(["-t1", "--latency"])
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", secs.ceil() as u64))
            .arg("--timeout")
            .arg("10s");
        if self.post {
            let script = env.dir.join("post.lua");
            if !script.exists() {
                fs::write(
                    &script,
                    format!(
                        "wrk.method = \"POST\"\nwrk.body = string.rep(\"p\", {POST_BODY})\n\
                         wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n"
                    ),
                )
                .map_err(|e| e.to_string())?;
            }
            cmd.arg("-s").arg(script);
        }
        if self.close {
            cmd.args(["-H", "Connection: close"]);
        }
        cmd.arg(format!("http://127.0.0.1:{port}{}", self.path));
        let out = output(&mut cmd)?;
        parse_wrk(&out).map_err(|e| format!("wrk: {e}\n{out}"))
    }
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(text)
}

fn parse_wrk(out: &str) -> Result<Load, String> {
    let mut requests = None;
    let mut secs = None;
    let (mut p50, mut p99) = (None, None);
    for line in out.lines().map(str::trim) {
        if let Some((n, rest)) = line.split_once(" requests in ") {
            requests = n.trim().parse::<u64>().ok();
            secs = rest
                .split(',')
                .next()
                .and_then(duration_ms)
                .map(|ms| ms / 1e3);
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = duration_ms(v);
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = duration_ms(v);
        } else if line.starts_with("Non-2xx or 3xx responses") || line.starts_with("Socket errors")
        {
            return Err(format!("errors: {line}"));
        }
    }
    match (requests, secs, p50, p99) {
        (Some(requests), Some(secs), Some(p50_ms), Some(p99_ms)) if requests > 0 => Ok(Load {
            requests,
            secs,
            p50_ms,
            p99_ms,
        }),
        _ => Err("no result in the output".into()),
    }
}

/// wrk's `1.23ms`, `456.00us`, `2.00s`, `1.50m` as milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        "h" => n * 3600e3,
        _ => return None,
    })
}

/// HTTP/2 clients: h2load, 16 connections × 10 streams, prior knowledge (h2c).
pub(crate) fn h2load(env: &Env, port: u16, path: &str, secs: f64) -> Result<Load, String> {
    let log = env.dir.join("h2load.log");
    let _ = fs::remove_file(&log);
    let mut cmd = procs::pinned(LOAD_CORE, "h2load");
    cmd.args(["-t1", "-c16", "-m10"])
        .arg(format!("-D{}", secs.ceil() as u64))
        .arg(format!("--log-file={}", log.display()))
        .arg(format!("http://127.0.0.1:{port}{path}"));
    let out = output(&mut cmd)?;
    parse_h2load(&out, &log).map_err(|e| format!("h2load: {e}\n{out}"))
}

fn parse_h2load(out: &str, log: &Path) -> Result<Load, String> {
    let mut secs = None;
    let mut done = None;
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            secs = rest
                .split(',')
                .next()
                .and_then(duration_ms)
                .map(|ms| ms / 1e3);
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            // `requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout`
            let count = |what: &str| -> Option<u64> {
                rest.split(", ")
                    .find_map(|p| p.strip_suffix(what)?.trim().parse().ok())
            };
            let (succeeded, failed, errored) =
                (count(" succeeded"), count(" failed"), count(" errored"));
            if failed.unwrap_or(0) + errored.unwrap_or(0) > 0 {
                return Err(format!("errors: {line}"));
            }
            done = succeeded;
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            let ok = rest
                .split(", ")
                .all(|p| p.ends_with(" 2xx") || p.starts_with("0 "));
            if !ok {
                return Err(format!("non-2xx responses: {line}"));
            }
        }
    }
    // The log: start time (µs since the epoch), status, µs until the end of the response.
    let text = fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut lat: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse::<f64>().ok())
        .map(|us| us / 1e3)
        .collect();
    match (done, secs) {
        (Some(requests), Some(secs)) if requests > 0 && !lat.is_empty() => Ok(Load {
            requests,
            secs,
            p50_ms: percentile(&mut lat, 0.50),
            p99_ms: percentile(&mut lat, 0.99),
        }),
        _ => Err("no result in the output".into()),
    }
}

/// The `q` quantile of `values` (nearest rank).
pub(crate) fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// WebSocket echo load through `port`: this program's client, its warm-up then `secs` of messages.
/// `measured` is called when the measured part starts, and again when it ends.
pub(crate) fn websocket(
    env: &Env,
    port: u16,
    warmup: f64,
    secs: f64,
    mut measured: impl FnMut() -> Result<(), String>,
) -> Result<Load, String> {
    let mut cmd = procs::pinned(LOAD_CORE, &env.xtask.to_string_lossy());
    cmd.args(["bench", "ws-load", &format!("ws://127.0.0.1:{port}/ws")])
        .arg(warmup.to_string())
        .arg(secs.to_string());
    let mut client = Proc::spawn("ws-load", &mut cmd, &env.log("ws-load"), true)?;
    let mut lines = client.lines()?;
    let mut next = || -> Result<String, String> {
        match lines.next() {
            Some(Ok(line)) => Ok(line),
            Some(Err(e)) => Err(format!("ws-load: {e}")),
            None => Err(format!(
                "ws-load ended early (see {})",
                env.log("ws-load").display()
            )),
        }
    };
    expect(&next()?, "start")?;
    measured()?;
    let result = next()?;
    measured()?;
    client.wait_exit(Duration::from_secs(10))?;
    // `done N SECS P50_MS P99_MS`
    let f: Vec<&str> = result.split_whitespace().collect();
    let num = |i: usize| -> Result<f64, String> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("ws-load: unexpected `{result}`"))
    };
    expect(f.first().copied().unwrap_or(""), "done")?;
    Ok(Load {
        requests: num(1)? as u64,
        secs: num(2)?,
        p50_ms: num(3)?,
        p99_ms: num(4)?,
    })
}

/// Idle WebSocket connections through `port`: opens `warm` connections, calls `opened`, opens
/// `count` more, calls `opened` again, then closes them all.
pub(crate) fn websocket_idle(
    env: &Env,
    port: u16,
    warm: usize,
    count: usize,
    mut opened: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let mut cmd = procs::pinned(LOAD_CORE, &env.xtask.to_string_lossy());
    cmd.args(["bench", "ws-idle", &format!("ws://127.0.0.1:{port}/ws")])
        .arg(warm.to_string())
        .arg(count.to_string());
    let mut client = Proc::spawn("ws-idle", &mut cmd, &env.log("ws-idle"), true)?;
    let mut lines = client.lines()?;
    for stage in [warm, warm + count] {
        match lines.next() {
            Some(Ok(line)) => expect(&line, &format!("open {stage}"))?,
            _ => {
                return Err(format!(
                    "ws-idle ended early (see {})",
                    env.log("ws-idle").display()
                ));
            }
        }
        opened()?;
        if let Some(stdin) = client.stdin() {
            stdin
                .write_all(b"next\n")
                .and_then(|()| stdin.flush())
                .map_err(|e| format!("ws-idle: {e}"))?;
        }
    }
    client.wait_exit(Duration::from_secs(30))
}

fn expect(line: &str, want: &str) -> Result<(), String> {
    if line.trim() == want {
        Ok(())
    } else {
        Err(format!("expected `{want}`, got `{line}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk() {
        let out = "Running 2s test @ http://127.0.0.1:1/small
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   1.02ms  200.00us   5.00ms   90.00%
  Latency Distribution
     50%  987.00us
     75%    1.10ms
     90%    1.30ms
     99%    2.50ms
  123456 requests in 2.00s, 30.00MB read
Requests/sec:  61728.00
Transfer/sec:     15.00MB
";
        let l = parse_wrk(out).unwrap();
        assert_eq!(l.requests, 123_456);
        assert!((l.secs - 2.0).abs() < 1e-9);
        assert!((l.p50_ms - 0.987).abs() < 1e-9);
        assert!((l.p99_ms - 2.5).abs() < 1e-9);
        assert!(parse_wrk(&format!("{out}  Non-2xx or 3xx responses: 3\n")).is_err());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
    }
}
