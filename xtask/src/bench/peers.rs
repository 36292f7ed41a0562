//! The processes of a run: the backends (nginx serving small bodies and static files, the WebSocket
//! echo server) and each proxy under test with its configuration.
//!
//! Every peer runs as one process with one worker, as production would run it on one core: nginx
//! with `master_process off` (its single worker does everything; a master would only sit idle), HAProxy
//! with `nbthread 1` in the foreground, reverseit with its runtime pinned to one core (tokio sizes
//! its worker pool from the affinity mask). Access logs are off everywhere; every proxy adds the
//! `X-Forwarded-*` headers that reverseit adds by default and keeps backend connections alive.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::procs::{self, LOAD_CORE, PROXY_CORE, Proc};

/// Bytes of the small response: a typical small API answer.
pub(crate) const SMALL_BODY: usize = 100;
/// Bytes of the large static response.
pub(crate) const LARGE_BODY: usize = 64 * 1024;
/// Bytes of the POSTed body.
pub(crate) const POST_BODY: usize = 1024 * 1024;
/// Backend connections a proxy keeps open: above the largest number of requests in flight (h2load's
/// 16 × 10 streams), so no proxy churns connections.
const UPSTREAM_KEEPALIVE: usize = 256;

/// Where a client reaches what is being measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    /// HTTP/1.1 (and WebSocket) port.
    pub(crate) http1: u16,
    /// Port taking HTTP/2 prior knowledge (h2c).
    pub(crate) h2c: u16,
}

/// The proxies measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proxy {
    /// No proxy: the load goes straight to the backends.
    Direct,
    Reverseit,
    /// nginx with `proxy_buffering on` (its default): the reference of the ratios.
    Nginx,
    /// nginx with `proxy_buffering off`.
    NginxUnbuffered,
    Haproxy,
}

impl Proxy {
    pub(crate) const ALL: [Proxy; 5] = [
        Proxy::Direct,
        Proxy::Reverseit,
        Proxy::Nginx,
        Proxy::NginxUnbuffered,
        Proxy::Haproxy,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Proxy::Direct => "none (direct)",
            Proxy::Reverseit => "reverseit",
            Proxy::Nginx => "nginx",
            Proxy::NginxUnbuffered => "nginx (buffering off)",
            Proxy::Haproxy => "haproxy",
        }
    }

    /// The short name used by `--proxies`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Proxy::Direct => "direct",
            Proxy::Reverseit => "reverseit",
            Proxy::Nginx => "nginx",
            Proxy::NginxUnbuffered => "nginx-unbuffered",
            Proxy::Haproxy => "haproxy",
        }
    }
}

/// The backends, started once for the whole run.
#[derive(Debug)]
pub(crate) struct Backends {
    pub(crate) http: Ports,
    pub(crate) ws: u16,
    _nginx: Proc,
    _echo: Proc,
}

/// Files and settings shared by every process of a run.
#[derive(Debug)]
pub(crate) struct Env {
    /// Scratch folder: configurations, logs, nginx's temporary files.
    pub(crate) dir: PathBuf,
    /// The `reverseit` binary under test.
    pub(crate) reverseit: PathBuf,
    /// This program, which also serves the WebSocket echo backend and clients.
    pub(crate) xtask: PathBuf,
}

impl Env {
    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }
}

/// Starts the HTTP backend (nginx, one worker) and the WebSocket echo backend on the load core.
pub(crate) fn start_backends(env: &Env) -> Result<Backends, String> {
    let root = env.dir.join("www");
    fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    fs::write(root.join("64k.bin"), vec![b'x'; LARGE_BODY]).map_err(|e| e.to_string())?;
    let http = Ports {
        http1: crate::ports::free_port()?,
        h2c: crate::ports::free_port()?,
    };
    let small = "s".repeat(SMALL_BODY);
    let conf = format!(
        "{head}
http {{
    {common}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{h1} reuseport;
        listen 127.0.0.1:{h2} http2;
        root {root};
        client_max_body_size 2m;
        client_body_buffer_size 2m;
        location = /small {{ return 200 \"{small}\"; }}
        location = /post {{ return 200 \"ok\"; }}
        location / {{ }}
    }}
}}
",
        head = nginx_head(env, "backend"),
        common = NGINX_HTTP_COMMON,
        h1 = http.http1,
        h2 = http.h2c,
        root = root.display(),
    );
    let nginx = start_nginx(env, "backend", &conf, LOAD_CORE)?;
    let ws = crate::ports::free_port()?;
    let mut echo = procs::pinned(LOAD_CORE, &env.xtask.to_string_lossy());
    echo.args(["bench", "ws-echo", &format!("127.0.0.1:{ws}")]);
    let echo = Proc::spawn("ws-echo", &mut echo, &env.log("ws-echo"), false)?;
    let mut backends = Backends {
        http,
        ws,
        _nginx: nginx,
        _echo: echo,
    };
    procs::wait_port(&mut backends._nginx, http.http1)?;
    procs::wait_port(&mut backends._nginx, http.h2c)?;
    procs::wait_port(&mut backends._echo, ws)?;
    Ok(backends)
}

/// A proxy under test, running on its own core.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) ports: Ports,
    /// `None` for [`Proxy::Direct`].
    pub(crate) proc: Option<Proc>,
}

/// Starts `proxy` in front of `backends`, pinned to the proxy core, and waits until it listens.
pub(crate) fn start(proxy: Proxy, env: &Env, backends: &Backends) -> Result<Running, String> {
    let http1 = crate::ports::free_port()?;
    let (ports, mut proc) = match proxy {
        Proxy::Direct => {
            return Ok(Running {
                ports: backends.http,
                proc: None,
            });
        }
        Proxy::Reverseit => {
            let ports = Ports { http1, h2c: http1 };
            let file = env.dir.join("reverseit.toml");
            write(&file, &reverseit_conf(http1, backends))?;
            let mut cmd = procs::pinned(PROXY_CORE, &env.reverseit.to_string_lossy());
            // `warn`: no access log, as for the other proxies.
            cmd.arg("--config").arg(&file).env("RUST_LOG", "warn");
            (
                ports,
                Proc::spawn("reverseit", &mut cmd, &env.log("reverseit"), false)?,
            )
        }
        Proxy::Nginx | Proxy::NginxUnbuffered => {
            let ports = Ports {
                http1,
                h2c: crate::ports::free_port()?,
            };
            let buffering = proxy == Proxy::Nginx;
            let conf = nginx_proxy_conf(env, ports, backends, buffering);
            (ports, start_nginx(env, "proxy", &conf, PROXY_CORE)?)
        }
        Proxy::Haproxy => {
            let ports = Ports { http1, h2c: http1 };
            let file = env.dir.join("haproxy.cfg");
            write(&file, &haproxy_conf(http1, backends))?;
            let mut cmd = procs::pinned(PROXY_CORE, "haproxy");
            cmd.arg("-db").arg("-f").arg(&file);
            (
                ports,
                Proc::spawn("haproxy", &mut cmd, &env.log("haproxy"), false)?,
            )
        }
    };
    procs::wait_port(&mut proc, ports.http1)?;
    procs::wait_port(&mut proc, ports.h2c)?;
    Ok(Running {
        ports,
        proc: Some(proc),
    })
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn reverseit_conf(port: u16, b: &Backends) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"

[pool]
pool_size = {UPSTREAM_KEEPALIVE}

[[routes]]
path = \"/\"
backend = \"http://127.0.0.1:{http}\"

[[routes]]
path = \"/ws\"
backend = \"ws://127.0.0.1:{ws}\"
",
        http = b.http.http1,
        ws = b.ws,
    )
}

/// Settings of every nginx `http` block: keep-alive connections are never recycled during a run.
const NGINX_HTTP_COMMON: &str = "access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;";

/// The main context of an nginx configuration: one process, files in the run's folder.
fn nginx_head(env: &Env, name: &str) -> String {
    let dir = env.dir.join(format!("nginx-{name}"));
    let _ = fs::create_dir_all(&dir);
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 10000; }}"
    )
}

fn start_nginx(env: &Env, name: &str, conf: &str, core: usize) -> Result<Proc, String> {
    let dir = env.dir.join(format!("nginx-{name}"));
    // Temporary paths must be set in `http`; the head only creates the folder.
    let conf = conf.replacen(
        "http {",
        &format!(
            "http {{
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;",
            d = dir.display()
        ),
        1,
    );
    let file = env.dir.join(format!("nginx-{name}.conf"));
    write(&file, &conf)?;
    let mut cmd = procs::pinned(core, "nginx");
    cmd.arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&file);
    Proc::spawn(
        &format!("nginx ({name})"),
        &mut cmd,
        &env.log(&format!("nginx-{name}")),
        false,
    )
}

fn nginx_proxy_conf(env: &Env, ports: Ports, b: &Backends, buffering: bool) -> String {
    let mut conf = nginx_head(env, "proxy");
    let _ = write!(
        conf,
        "
http {{
    {common}
    client_max_body_size 2m;
    upstream backend {{
        server 127.0.0.1:{http};
        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_requests 10000000;
        keepalive_timeout 120s;
    }}
    upstream ws {{ server 127.0.0.1:{ws}; }}
    server {{
        listen 127.0.0.1:{h1} reuseport;
        listen 127.0.0.1:{h2} http2;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $proxy_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_buffering {buffering};
        }}
        location = /ws {{
            proxy_pass http://ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection \"upgrade\";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
",
        common = NGINX_HTTP_COMMON,
        http = b.http.http1,
        ws = b.ws,
        h1 = ports.http1,
        h2 = ports.h2c,
        buffering = if buffering { "on" } else { "off" },
    );
    conf
}

fn haproxy_conf(port: u16, b: &Backends) -> String {
    format!(
        "global
    nbthread 1
    maxconn 8000

defaults
    mode http
    option forwardfor
    http-reuse always
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
    timeout tunnel 3600s

frontend proxy
    # A clear-text HTTP frontend also takes HTTP/2 prior knowledge (the preface is detected).
    bind 127.0.0.1:{port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Port %[dst_port]
    use_backend ws if {{ path /ws }}
    default_backend http

backend http
    server s1 127.0.0.1:{http}

backend ws
    server s1 127.0.0.1:{ws}
",
        http = b.http.http1,
        ws = b.ws,
    )
}
