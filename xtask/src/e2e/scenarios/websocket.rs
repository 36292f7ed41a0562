//! WebSocket through the proxy with third-party peers: the `websockets` client and server, and
//! the Autobahn|Testsuite fuzzing client.

use std::fs;
use std::process::Command;
use std::time::Duration;

use super::{Env, ensure};
use crate::e2e::proc;

/// WS-2, WS-4, WS-5, WS-6, WS-10, POOL-5: `e2e/ws_client.py` through the plain listener to a `ws`
/// backend and to a `wss` backend trusted by `ca_file`, and over TLS to the proxy itself.
pub(crate) fn clients(env: &Env) -> Result<String, String> {
    let seen = format!("http://127.0.0.1:{}", env.ports.ws);
    let runs = [
        (
            "ws client -> ws backend",
            format!("ws://{}/ws/echo", env.plain),
        ),
        (
            "ws client -> wss backend",
            format!("ws://{}/wss/echo", env.plain),
        ),
        (
            "wss client -> ws backend",
            format!("wss://{}/ws/echo", env.tls),
        ),
    ];
    let mut checks = 0;
    for (what, url) in &runs {
        let mut cmd = Command::new(env.paths.python3());
        cmd.arg(env.paths.root.join("e2e").join("ws_client.py"))
            .args(["--url", url, "--seen", &seen, "--ca"])
            .arg(&env.ca);
        let out = proc::run(&mut cmd, Duration::from_secs(60))?;
        let text = out.stdout_str();
        for line in text.lines() {
            println!("    {what}: {line}");
        }
        ensure(out.status.success(), || {
            let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
            format!(
                "{what}: {} {}",
                fails.join("; "),
                out.stderr_str().lines().last().unwrap_or("")
            )
        })?;
        checks += text.lines().filter(|l| l.starts_with("ok ")).count();
    }
    Ok(format!(
        "{checks} checks over {} client/backend pairs",
        runs.len()
    ))
}

/// WS-5, WS-6, WS-8, ERR-5: Autobahn|Testsuite's fuzzing client against the `websockets` echo
/// server, straight and through the proxy, in one run; every case that passes straight must pass
/// through the proxy.
pub(crate) fn autobahn(env: &Env) -> Result<String, String> {
    let python = env
        .tools
        .python27
        .as_ref()
        .ok_or("no Python 2.7 (checked before running)")?;
    let dir = env.dir("autobahn")?;
    let report = dir.join("report");
    let _ = fs::remove_dir_all(&report);
    let spec = dir.join("fuzzingclient.json");
    fs::write(
        &spec,
        format!(
            r#"{{
  "outdir": "{}",
  "servers": [
    {{"agent": "direct", "url": "ws://127.0.0.1:{}/"}},
    {{"agent": "reverseit", "url": "ws://{}/autobahn/"}}
  ],
  "cases": ["*"],
  "exclude-cases": [],
  "exclude-agent-cases": {{}}
}}
"#,
            report.display(),
            env.ports.ws,
            env.plain
        ),
    )
    .map_err(|e| format!("{}: {e}", spec.display()))?;
    // The packages live in a `--target` folder: `site.addsitedir` reads its `.pth` files (the
    // `zope` namespace package needs them), which PYTHONPATH would not.
    let launcher = format!(
        "import site, sys; site.addsitedir({lib:?}); \
         sys.argv = ['wstest', '-m', 'fuzzingclient', '-s', {spec:?}]; \
         from autobahntestsuite.wstest import run; run()",
        lib = env.paths.py27_lib().display().to_string(),
        spec = spec.display().to_string(),
    );
    let log = dir.join("wstest.log");
    let out = proc::run(
        Command::new(python)
            .args(["-c", &launcher])
            .current_dir(&dir)
            .env("PYTHONWARNINGS", "ignore"),
        Duration::from_secs(280),
    )?;
    let _ = fs::write(
        &log,
        [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
    );
    ensure(out.status.success(), || {
        format!("wstest failed ({}), see {}", out.status, log.display())
    })?;
    let cmp = proc::run(
        Command::new(env.paths.python3())
            .arg(env.paths.root.join("e2e").join("autobahn_compare.py"))
            .arg(report.join("index.json"))
            .args(["direct", "reverseit"]),
        Duration::from_secs(30),
    )?;
    let text = cmp.stdout_str();
    for line in text.lines() {
        println!("    {line}");
    }
    ensure(cmp.status.success(), || {
        format!(
            "cases that pass direct fail through the proxy (report in {}): {}",
            report.display(),
            text.lines()
                .filter(|l| l.contains("REGRESSION"))
                .take(5)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let counts: Vec<&str> = text.lines().take(2).collect();
    Ok(counts.join("; "))
}
