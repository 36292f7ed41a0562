//! Big bodies both ways, and server-sent events arriving one by one.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Env, curl_to, ensure, listeners, tmp};
use crate::e2e::proc::{self, Proc};
use crate::e2e::setup::{BLOB_SIZE, sha256};

/// STR-2, LIM-4, STR-6: 64 MiB uploads (Content-Length and chunked) and downloads through each
/// kind of listener, checked by SHA-256 at the far end.
pub(crate) fn big_bodies(env: &Env) -> Result<String, String> {
    let ls = listeners(env);
    let blob = format!("{}", env.blob.display());
    let size = BLOB_SIZE.to_string();
    // (listener, route, chunked)
    let uploads = [
        (&ls[0], "/h1", false),
        (&ls[0], "/tls-h2", true),
        (&ls[1], "/h2c", false),
        (&ls[2], "/h1", false),
    ];
    for (l, mount, chunked) in uploads {
        let what = format!(
            "upload {} -> {mount}{}",
            l.name,
            if chunked { " (chunked)" } else { "" }
        );
        let mut extra = vec!["-X", "POST", "-T", &blob];
        if chunked {
            extra.extend(["-H", "transfer-encoding: chunked"]);
        }
        let url = format!("{}{mount}/echo", l.base);
        let mut args: Vec<&str> = l.args.iter().map(String::as_str).collect();
        args.extend(&extra);
        args.push(&url);
        let got = curl_to(env, &args, false)?;
        ensure(got.status == 200, || {
            format!("{what}: status {}", got.status)
        })?;
        ensure(
            got.field("body_len").as_deref() == Some(size.as_str())
                && got.field("body_sha256").as_deref() == Some(env.blob_sha.as_str()),
            || {
                format!(
                    "{what}: backend got {:?} bytes with SHA-256 {:?}, sent {size} with {}",
                    got.field("body_len"),
                    got.field("body_sha256"),
                    env.blob_sha
                )
            },
        )?;
    }
    let downloads = [
        (&ls[0], "/nginx/blob.bin"),
        (&ls[1], "/tls-h2/blob"),
        (&ls[2], "/h1/blob"),
        (&ls[3], "/nginx-h2c/blob.bin"),
    ];
    for (l, path) in downloads {
        let what = format!("download {} <- {path}", l.name);
        let url = format!("{}{path}", l.base);
        let mut args: Vec<&str> = l.args.iter().map(String::as_str).collect();
        args.push(&url);
        let got = curl_to(env, &args, true)?;
        let len = fs::metadata(&got.body_file).map(|m| m.len()).unwrap_or(0);
        let sha = sha256(&got.body_file)?;
        let _ = fs::remove_file(&got.body_file);
        ensure(
            got.status == 200 && len == BLOB_SIZE as u64 && sha == env.blob_sha,
            || format!("{what}: status {}, {len} bytes, SHA-256 {sha}", got.status),
        )?;
        let cl = got
            .head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default();
        ensure(cl == size, || {
            format!("{what}: Content-Length {cl:?} not passed through")
        })?;
    }
    Ok("4 uploads and 4 downloads of 64 MiB, SHA-256 equal".into())
}

/// STR-1: five events 400 ms apart reach curl one by one, not at the end.
pub(crate) fn sse(env: &Env) -> Result<String, String> {
    let ls = listeners(env);
    let mut notes = Vec::new();
    for (l, mount) in [(&ls[0], "/h1"), (&ls[2], "/h2c"), (&ls[1], "/tls-h2")] {
        let url = format!("{}{mount}/sse?n=5&gap=400", l.base);
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-N", "--max-time", "20"])
            .args(&l.args)
            .arg(&url);
        let log = tmp(env, "sse.log")?;
        let mut p = Proc::spawn("curl -N", &mut cmd, &log, true)?;
        let lines = proc::lines(p.stdout().expect("stdout was piped"));
        let start = Instant::now();
        let mut arrivals = Vec::new();
        while let Ok((at, line)) = lines.recv_timeout(Duration::from_secs(10)) {
            if let Some(data) = line.strip_prefix("data: ") {
                arrivals.push((at.duration_since(start), data.to_owned()));
            }
        }
        let status = p.wait_for(Duration::from_secs(5));
        let what = format!("{} -> {mount}", l.name);
        ensure(status.is_some_and(|s| s.success()), || {
            format!(
                "{what}: curl ended with {status:?}: {}",
                proc::tail(&log, 5)
            )
        })?;
        let texts: Vec<&str> = arrivals.iter().map(|(_, d)| d.as_str()).collect();
        let want: Vec<String> = (0..5).map(|i| format!("event {i}")).collect();
        ensure(texts == want, || format!("{what}: events {texts:?}"))?;
        // Each event arrives on its own, as sent (400 ms apart): a buffering proxy would deliver
        // them together at the end. The margins allow for a loaded machine.
        let spread = arrivals[4].0.saturating_sub(arrivals[0].0);
        ensure(spread >= Duration::from_millis(1200), || {
            format!(
                "{what}: all five events within {}ms: buffered",
                spread.as_millis()
            )
        })?;
        for pair in arrivals.windows(2) {
            let gap = pair[1].0.saturating_sub(pair[0].0);
            ensure(gap >= Duration::from_millis(100), || {
                format!(
                    "{what}: `{}` came {}ms after `{}`: buffered",
                    pair[1].1,
                    gap.as_millis(),
                    pair[0].1
                )
            })?;
        }
        notes.push(l.name);
    }
    Ok(format!(
        "5 events 400 ms apart, one by one, via {}",
        notes.join(", ")
    ))
}
