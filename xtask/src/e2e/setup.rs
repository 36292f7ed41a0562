//! The shared set-up: the test CA and leaf certificate, the 64 MiB test file, the third-party
//! backends (hypercorn, the `websockets` echo server, nginx), the recording backend, and two proxies
//! (plain HTTP/1.1 + h2c, and TLS with ALPN) from one generated TOML file.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::deps::{Paths, Tool, Tools};
use super::proc::{self, Proc};
use super::recorder::Recorder;
use crate::ports::free_port;

/// Size of the upload and download test file.
pub(crate) const BLOB_SIZE: usize = 64 << 20;

/// Ports of the backends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    /// hypercorn, plain (HTTP/1.1 and h2c).
    pub(crate) hyp: u16,
    /// hypercorn, TLS (ALPN h2 and http/1.1).
    pub(crate) hyp_tls: u16,
    /// the `websockets` echo server, plain.
    pub(crate) ws: u16,
    /// the `websockets` echo server, TLS.
    pub(crate) ws_tls: u16,
    /// nginx, HTTP/1.1.
    pub(crate) ngx: u16,
    /// nginx, h2c with prior knowledge.
    pub(crate) ngx_h2c: u16,
    /// a port nothing listens on.
    pub(crate) down: u16,
}

/// Everything the scenarios share.
#[derive(Debug)]
pub(crate) struct Env {
    pub(crate) paths: Paths,
    pub(crate) tools: Tools,
    pub(crate) bin: PathBuf,
    pub(crate) ca: PathBuf,
    pub(crate) blob: PathBuf,
    pub(crate) blob_sha: String,
    pub(crate) ports: Ports,
    pub(crate) recorder: Recorder,
    /// The plain proxy (HTTP/1.1 and h2c).
    pub(crate) plain: SocketAddr,
    /// The TLS proxy (h2 and HTTP/1.1 by ALPN).
    pub(crate) tls: SocketAddr,
    /// The generated proxy configuration (plain), for scenarios that start their own proxy.
    pub(crate) config: PathBuf,
    /// Kept running until the run ends; dropped (killed by PID) with the `Env`.
    services: Mutex<Vec<Proc>>,
}

impl Env {
    pub(crate) fn dir(&self, name: &str) -> Result<PathBuf, String> {
        let d = self.paths.work.join(name);
        fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(d)
    }

    pub(crate) fn logs(&self) -> PathBuf {
        self.paths.work.join("logs")
    }

    /// Whether the proxies are still running (a scenario that killed one would be a bug).
    pub(crate) fn services_alive(&self) -> Result<(), String> {
        let mut services = self.services.lock().expect("services lock poisoned");
        for p in services.iter_mut() {
            if let Some(status) = p.try_wait() {
                return Err(format!("{} exited ({status}):\n{}", p.name, p.log_tail()));
            }
        }
        Ok(())
    }

    /// Stops every service, by PID.
    pub(crate) fn stop(&self) {
        self.services
            .lock()
            .expect("services lock poisoned")
            .drain(..)
            .rev()
            .for_each(drop);
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Builds everything; on error whatever was started is stopped (the `Proc`s are dropped).
pub(crate) fn start(paths: Paths, tools: Tools, bin: PathBuf) -> Result<Env, String> {
    let work = &paths.work;
    let logs = work.join("logs");
    let certs = work.join("certs");
    for d in [&logs, &certs, &work.join("data")] {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }

    let (ca, cert, key) = (
        certs.join("ca.pem"),
        certs.join("cert.pem"),
        certs.join("key.pem"),
    );
    if tools.missing(Tool::Openssl).is_none() {
        make_certs(&certs)?;
    }
    let blob = work.join("data").join("blob.bin");
    let blob_sha = make_blob(&blob)?;

    let ports = Ports {
        hyp: free_port()?,
        hyp_tls: free_port()?,
        ws: free_port()?,
        ws_tls: free_port()?,
        ngx: free_port()?,
        ngx_h2c: free_port()?,
        down: free_port()?,
    };
    let mut services = Vec::new();
    let with_tls = tools.missing(Tool::Openssl).is_none();

    if tools.missing(Tool::PyPeers).is_none() {
        let mut hyp = Command::new(paths.venv3().join("bin").join("hypercorn"));
        hyp.current_dir(paths.root.join("e2e"))
            .env("E2E_BLOB", &blob)
            .args(["--workers", "0", "--keep-alive", "120"])
            // With TLS files, `--bind` is the TLS port and `--insecure-bind` the plain one;
            // without them `--insecure-bind` alone is ignored.
            .arg(if with_tls {
                "--insecure-bind"
            } else {
                "--bind"
            })
            .arg(local(ports.hyp).to_string());
        if with_tls {
            hyp.arg("--certfile")
                .arg(&cert)
                .arg("--keyfile")
                .arg(&key)
                .arg("--bind")
                .arg(local(ports.hyp_tls).to_string());
        }
        hyp.arg("http_backend:app");
        let mut p = Proc::spawn("hypercorn", &mut hyp, &logs.join("hypercorn.log"), false)?;
        p.wait_port(local(ports.hyp), Duration::from_secs(20))?;
        services.push(p);

        let mut ws = Command::new(paths.python3());
        ws.arg(paths.root.join("e2e").join("ws_backend.py"))
            .arg("--port")
            .arg(ports.ws.to_string())
            // Autobahn's 9.3/9.4 cases send 4 MiB messages in up to 65 536 fragments.
            .env("WEBSOCKETS_MAX_FRAGMENTS", "10000000");
        if with_tls {
            ws.arg("--tls-port")
                .arg(ports.ws_tls.to_string())
                .arg("--cert")
                .arg(&cert)
                .arg("--key")
                .arg(&key);
        }
        let mut p = Proc::spawn("ws_backend", &mut ws, &logs.join("ws_backend.log"), false)?;
        p.wait_port(local(ports.ws), Duration::from_secs(20))?;
        services.push(p);
    }

    if tools.missing(Tool::Nginx).is_none() {
        let prefix = work.join("nginx");
        fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        let conf = prefix.join("nginx.conf");
        write(&conf, &nginx_conf(&prefix, &work.join("data"), ports))?;
        let mut ngx = Command::new("nginx");
        ngx.arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr"]);
        let mut p = Proc::spawn("nginx", &mut ngx, &logs.join("nginx.log"), false)?;
        p.wait_port(local(ports.ngx), Duration::from_secs(20))?;
        services.push(p);
    }

    let recorder = Recorder::start()?;
    let config = work.join("reverseit.toml");
    write(&config, &proxy_conf(ports, recorder.addr, &ca, None))?;
    let (proxy, plain) = start_proxy(&bin, &config, &logs.join("proxy-plain.log"), "proxy")?;
    services.push(proxy);
    let tls = if with_tls {
        let tls_config = work.join("reverseit-tls.toml");
        write(
            &tls_config,
            &proxy_conf(ports, recorder.addr, &ca, Some((&cert, &key))),
        )?;
        let (proxy, addr) =
            start_proxy(&bin, &tls_config, &logs.join("proxy-tls.log"), "proxy-tls")?;
        services.push(proxy);
        addr
    } else {
        local(ports.down)
    };

    Ok(Env {
        paths,
        tools,
        bin,
        ca,
        blob,
        blob_sha,
        ports,
        recorder,
        plain,
        tls,
        config,
        services: Mutex::new(services),
    })
}

/// Starts `reverseit --config FILE --listen 127.0.0.1:0` and reads its readiness line.
pub(crate) fn start_proxy(
    bin: &Path,
    config: &Path,
    log: &Path,
    name: &str,
) -> Result<(Proc, SocketAddr), String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info");
    let mut p = Proc::spawn(name, &mut cmd, log, true)?;
    let out = p.stdout().expect("stdout was piped");
    let lines = proc::lines(out);
    match lines.recv_timeout(Duration::from_secs(20)) {
        Ok((_, line)) => {
            let addr = line
                .strip_prefix("listening on ")
                .and_then(|u| u.split("://").nth(1))
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("{name}: unexpected first line {line:?}"))?;
            Ok((p, addr))
        }
        Err(_) => Err(format!(
            "{name} printed no readiness line within 20 s:\n{}",
            p.log_tail()
        )),
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A test CA and a leaf for `localhost` and 127.0.0.1 signed by it (EC P-256), by the openssl CLI.
fn make_certs(dir: &Path) -> Result<(), String> {
    write(
        &dir.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )?;
    let steps = [
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem \
         -out ca.pem -days 7 -subj /CN=reverseit-e2e-test-ca",
        "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out leaf.csr \
         -subj /CN=localhost",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem \
         -days 7 -extfile leaf.ext",
    ];
    for args in steps {
        let out = proc::run(
            Command::new("openssl")
                .args(args.split_whitespace())
                .current_dir(dir),
            Duration::from_secs(30),
        )?;
        if !out.status.success() {
            return Err(format!("openssl {args}: {}", out.stderr_str()));
        }
    }
    Ok(())
}

/// The 64 MiB file (pseudo-random, the same every run), and its SHA-256.
fn make_blob(path: &Path) -> Result<String, String> {
    let fresh = fs::metadata(path).is_ok_and(|m| m.len() == BLOB_SIZE as u64);
    if !fresh {
        let mut data = Vec::with_capacity(BLOB_SIZE);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while data.len() < BLOB_SIZE {
            // xorshift64: cheap, and incompressible enough that nothing can shortcut the bytes.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        let mut f = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(&data)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    sha256(path)
}

/// SHA-256 of a file, by coreutils' `sha256sum`.
pub(crate) fn sha256(path: &Path) -> Result<String, String> {
    let out = proc::run(Command::new("sha256sum").arg(path), Duration::from_secs(60))?;
    out.stdout_str()
        .split_whitespace()
        .next()
        .filter(|_| out.status.success())
        .map(str::to_owned)
        .ok_or_else(|| format!("sha256sum {}: {}", path.display(), out.stderr_str()))
}

/// nginx in the foreground, one process (no master), everything under `prefix`: port `ngx` speaks
/// HTTP/1.1, `ngx_h2c` HTTP/2 with prior knowledge. `/hello` answers with the protocol it saw.
fn nginx_conf(prefix: &Path, data: &Path, ports: Ports) -> String {
    let p = prefix.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    client_max_body_size 0;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    types {{ application/octet-stream bin; }}
    server {{
        listen 127.0.0.1:{ngx};
        listen 127.0.0.1:{h2c} http2;
        root {data};
        location = /hello {{
            default_type text/plain;
            return 200 "hello from nginx $server_protocol\n";
        }}
    }}
}}
"#,
        ngx = ports.ngx,
        h2c = ports.ngx_h2c,
        data = data.display(),
    )
}

/// The proxy's routes (the same for the plain and the TLS listener).
fn proxy_conf(
    ports: Ports,
    recorder: SocketAddr,
    ca: &Path,
    tls: Option<(&Path, &Path)>,
) -> String {
    let ca = ca.display();
    let mut s = String::from("shutdown_timeout = 10000\n\n");
    if let Some((cert, key)) = tls {
        s += &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n",
            cert.display(),
            key.display()
        );
    }
    let hyp = format!("127.0.0.1:{}", ports.hyp);
    let hyp_tls = format!("127.0.0.1:{}", ports.hyp_tls);
    let route = |path: &str, backend: String, extra: &str| {
        format!(
            "[[routes]]\npath = \"{path}\"\nbackend = \"{backend}\"\nstrip_path = \"{path}\"\n{extra}\n"
        )
    };
    s += &route("/h1", format!("http://{hyp}"), "");
    s += &route("/h2c", format!("http://{hyp}"), "protocols = [\"http2\"]\n");
    s += &route(
        "/tls-h2",
        format!("https://{hyp_tls}"),
        &format!("protocols = [\"http1\", \"http2\"]\nca_file = \"{ca}\"\n"),
    );
    s += &route(
        "/tls-h1",
        format!("https://{hyp_tls}"),
        &format!("protocols = [\"http1\"]\nca_file = \"{ca}\"\n"),
    );
    s += &route("/nginx", format!("http://127.0.0.1:{}", ports.ngx), "");
    s += &route(
        "/nginx-h2c",
        format!("http://127.0.0.1:{}", ports.ngx_h2c),
        "protocols = [\"http2\"]\n",
    );
    s += &route(
        "/limits",
        format!("http://{hyp}"),
        "max_request_target_bytes = 1024\nmax_request_headers = 20\n\
         max_request_header_line_bytes = 2048\nmax_request_body_size = 1048576\n\
         max_response_body_size = 1048576\n",
    );
    s += &route("/down", format!("http://127.0.0.1:{}", ports.down), "");
    s += &route(
        "/replace",
        format!("http://{hyp}"),
        "forwarded_headers = \"replace\"\n",
    );
    s += &route("/ws", format!("ws://127.0.0.1:{}", ports.ws), "");
    s += &route(
        "/wss",
        format!("wss://127.0.0.1:{}", ports.ws_tls),
        &format!("ca_file = \"{ca}\"\n"),
    );
    // Autobahn sends messages up to 16 MiB and expects them echoed.
    s += &route(
        "/autobahn",
        format!("ws://127.0.0.1:{}", ports.ws),
        "max_websocket_frame_size = 67108864\n",
    );
    s += &format!("[[routes]]\npath = \"/smuggle\"\nbackend = \"http://{recorder}\"\n\n");
    s
}
