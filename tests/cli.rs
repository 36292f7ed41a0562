//! The `reverseit` command, run as a real process against in-process backends (`cli.md`).
//!
//! Every proxy listens on `127.0.0.1:0` and is found through its readiness line; every child is
//! killed when its guard drops; every wait is bounded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Upper bound of every wait in these tests; reached only when something is broken.
const WAIT: Duration = Duration::from_secs(15);

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

// ---------------------------------------------------------------------------------------------
// The process under test

/// A running `reverseit`, killed on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    /// The first stdout line, `listening on ...`.
    ready: String,
    stderr: Arc<Mutex<String>>,
    stderr_lines: mpsc::UnboundedReceiver<String>,
    /// Held open and never read, for [`Proxy::start_unread_stderr`].
    _unread_stderr: Option<ChildStderr>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reverseit"));
    cmd.args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

impl Proxy {
    /// Starts the proxy and waits for its readiness line.
    async fn start(args: &[&str]) -> Proxy {
        Self::start_with(args, true).await
    }

    /// Starts the proxy on the config `file`, listening on an ephemeral port.
    async fn with_config(file: &std::path::Path) -> Proxy {
        let file = file.to_str().unwrap();
        Self::start(&["--config", file, "--listen", "127.0.0.1:0"]).await
    }

    /// Starts the proxy with its stderr a pipe that is never read, as a supervisor capturing
    /// output it does not drain would leave it.
    async fn start_unread_stderr(args: &[&str]) -> Proxy {
        Self::start_with(args, false).await
    }

    async fn start_with(args: &[&str], read_stderr: bool) -> Proxy {
        let mut child = command(args).spawn().expect("spawn reverseit");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, stderr_lines) = mpsc::unbounded_channel();
        let child_stderr = child.stderr.take().unwrap();
        let unread_stderr = if read_stderr {
            let mut err_lines = BufReader::new(child_stderr).lines();
            let sink = Arc::clone(&stderr);
            tokio::spawn(async move {
                while let Ok(Some(line)) = err_lines.next_line().await {
                    let mut all = sink.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                    let _ = tx.send(line);
                }
            });
            None
        } else {
            Some(child_stderr)
        };
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = match within("readiness line", out.next_line()).await {
            Ok(Some(line)) => line,
            other => panic!(
                "no readiness line ({other:?}); stderr:\n{}",
                stderr.lock().unwrap()
            ),
        };
        // Keep draining stdout (the demo prints hints after the readiness line).
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        let addr = ready
            .strip_prefix("listening on http://")
            .or_else(|| ready.strip_prefix("listening on https://"))
            .unwrap_or_else(|| panic!("unexpected readiness line {ready:?}"))
            .parse()
            .expect("the readiness line carries a socket address");
        Proxy {
            child,
            addr,
            ready,
            stderr,
            stderr_lines,
            _unread_stderr: unread_stderr,
        }
    }

    fn pid(&self) -> String {
        self.child.id().expect("running").to_string()
    }

    fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        within("proxy exit", self.child.wait()).await.unwrap()
    }

    /// Waits for a stderr line containing `needle`.
    async fn stderr_line(&mut self, needle: &str) -> String {
        within(needle, async {
            loop {
                match self.stderr_lines.recv().await {
                    Some(line) if line.contains(needle) => return line,
                    Some(_) => {}
                    None => panic!("stderr closed before {needle:?}"),
                }
            }
        })
        .await
    }
}

/// Runs the command to completion: its exit status and stderr.
async fn run_to_end(args: &[&str]) -> (ExitStatus, String, String) {
    let out = within("command", command(args).output()).await.unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config file under the target's temporary folder.
fn config_file(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Clients and backends

/// A task aborted on drop.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One HTTP/1.1 exchange on a fresh connection: status, content type and body.
async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> (StatusCode, String, String) {
    within("HTTP exchange", async {
        let io = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8_lossy(&body).into_owned())
    })
    .await
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String, String) {
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(addr, req).await
}

/// A backend answering `NAME PATH?QUERY x-route=VALUE`, over HTTP/1.1.
async fn named_backend(name: &'static str) -> (SocketAddr, Task) {
    serve_backend(move |req: Request<Incoming>| async move {
        let route = req
            .headers()
            .get("x-route")
            .map_or("-", |v| v.to_str().unwrap())
            .to_owned();
        Response::new(Full::new(Bytes::from(format!(
            "{name} {} x-route={route}",
            req.uri()
        ))))
    })
    .await
}

async fn serve_backend<F, Fut>(handler: F) -> (SocketAddr, Task)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, Task(task))
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn readiness_line_carries_the_real_port() {
    let (backend, _b) = named_backend("a").await;
    let proxy = Proxy::start(&[
        "--backend",
        &format!("http://{backend}"),
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(proxy.ready, format!("listening on http://{}", proxy.addr));
    assert_ne!(proxy.addr.port(), 0);
    assert_eq!(proxy.addr.ip().to_string(), "127.0.0.1");
    let (status, _, body) = get(proxy.addr, "/x?y=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "a /x?y=1 x-route=-");
}

#[tokio::test]
async fn backend_flag_mode_strips_the_path() {
    // PATH-1 through --strip-path; --protocols is accepted.
    let (backend, _b) = named_backend("a").await;
    let proxy = Proxy::start(&[
        "--backend",
        &format!("http://{backend}/v1"),
        "--strip-path",
        "/api",
        "--protocols",
        "http1",
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(
        get(proxy.addr, "/api/users").await.2,
        "a /v1/users x-route=-"
    );
    assert_eq!(get(proxy.addr, "/other").await.2, "a /v1/other x-route=-");
}

#[tokio::test]
async fn demo_mode_answers_hello_echo_and_websocket() {
    // WS-5, WS-6 through the proxy to the demo backend.
    let mut proxy = Proxy::start(&["--listen", "127.0.0.1:0"]).await;
    let (status, ct, body) = get(proxy.addr, "/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(body.contains("Hello"), "{body}");

    let req = Request::post("/echo?x=1")
        .header("host", "demo")
        .header("x-test", "yes")
        .body(Full::new(Bytes::from_static(b"he said \"hi\"")))
        .unwrap();
    let (status, ct, body) = send(proxy.addr, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "application/json");
    for part in [
        r#""method":"POST""#,
        r#""path":"/echo""#,
        r#""query":"x=1""#,
        r#""x-test":"yes""#,
        r#""body":"he said \"hi\"""#,
        r#""x-forwarded-for":"127.0.0.1""#,
    ] {
        assert!(body.contains(part), "{part} not in {body}");
    }

    let (mut ws, resp) = within(
        "WebSocket connect",
        tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr)),
    )
    .await
    .expect("WebSocket handshake through the proxy");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        within("text echo", ws.next()).await.unwrap().unwrap(),
        Message::text("hello")
    );
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        within("binary echo", ws.next()).await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .unwrap();
    assert_eq!(
        within("pong", ws.next()).await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"p"))
    );
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::from(4001),
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    match within("close echo", ws.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason.as_str(), "bye");
        }
        other => panic!("expected the close echoed, got {other:?}"),
    }

    // The access log has a line per request.
    let line = proxy.stderr_line("path=/hello").await;
    assert!(
        line.contains("method=GET") && line.contains("status=200"),
        "{line}"
    );
}

/// Logs never hold traffic up: with stderr a pipe nobody reads, the access log fills the pipe,
/// further lines are dropped, and requests go on being answered (before, the proxy's thread
/// blocked in its write once the pipe's 64 KiB were full).
#[tokio::test]
async fn unread_stderr_pipe_never_stalls_requests() {
    let (backend, _b) = named_backend("a").await;
    let proxy = Proxy::start_unread_stderr(&[
        "--backend",
        &format!("http://{backend}"),
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    // A 1 KB path makes each access-log line over 1 KB: 400 requests log several pipes' worth.
    let path = format!("/{}", "a".repeat(1000));
    within("400 requests with stderr unread", async {
        let io = TcpStream::connect(proxy.addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        for i in 0..400 {
            let req = Request::get(&path)
                .header("host", proxy.addr.to_string())
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "request {i}");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(body.starts_with(b"a /aaa"), "request {i}");
        }
    })
    .await;
}

#[tokio::test]
async fn config_routes_by_longest_prefix_and_strips() {
    // CFG-1, CFG-3, PATH-1, PATH-2, HDR-5; unmatched paths get the proxy's own 404.
    let (a, _a) = named_backend("a").await;
    let (b, _b) = named_backend("b").await;
    let file = config_file(
        "two-routes.toml",
        &format!(
            r#"
listen = "127.0.0.1:9"   # overridden by --listen

[pool]
pool_size = 4

[[routes]]
path = "/api"
backend = "http://{a}"
strip_path = "/api"
add_headers = {{ "x-route" = "api" }}

[[routes]]
path = "/api/v2/"
backend = "http://{b}/two"
strip_path = "/api/v2"
pool_timeout = 1000

[[routes]]
path = "/raw"
backend = "http://{b}"
"#
        ),
    );
    let mut proxy = Proxy::with_config(&file).await;
    for (path, expected) in [
        ("/api/users?q=1", "a /users?q=1 x-route=api"),
        ("/api", "a / x-route=api"),
        ("/api/v2/users", "b /two/users x-route=-"),
        ("/api/v2", "b /two/ x-route=-"),
        ("/api/v22", "a /v22 x-route=api"),
        // No strip_path: the mount prefix is forwarded as is.
        ("/raw/x", "b /raw/x x-route=-"),
    ] {
        let (status, _, body) = get(proxy.addr, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(body, expected, "{path}");
    }
    for path in ["/", "/apiary", "/rawx", "/other/api"] {
        let (status, ct, body) = get(proxy.addr, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(ct.starts_with("text/plain"), "{path}: {ct}");
        assert!(!body.is_empty());
    }
    // The access log names the route that served each request and its backend, `-` for none.
    let line = proxy.stderr_line("path=/api/v2/users ").await;
    assert!(
        line.contains(&format!(
            " route=/api/v2 backend=http://{b}/two status=200 "
        )),
        "{line}"
    );
    let line = proxy.stderr_line("path=/api/v22 ").await;
    assert!(
        line.contains(&format!(" route=/api backend=http://{a} status=200 ")),
        "{line}"
    );
    let line = proxy.stderr_line("path=/apiary ").await;
    assert!(line.contains(" route=- backend=- status=404 "), "{line}");
}

// ERR-2 in the access log: a response cut short (a backend body shorter than its Content-Length)
// is logged complete=false; a whole one complete=true.
#[tokio::test]
async fn access_log_marks_an_aborted_response_incomplete() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let _backend = Task(tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let answer: &[u8] = if buf[..n].starts_with(b"GET /short") {
                b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly twenty bytes..."
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nwhole"
            };
            let _ = s.write_all(answer).await;
        }
    }));
    let url = format!("http://{backend}");
    let mut proxy = Proxy::start(&["--backend", &url, "--listen", "127.0.0.1:0"]).await;
    let (status, _, body) = get(proxy.addr, "/whole").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "whole"));
    let line = proxy.stderr_line("path=/whole ").await;
    assert!(line.ends_with("complete=true"), "{line}");

    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /short HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = within("the cut response", stream.read_to_end(&mut answer)).await;
    let line = proxy.stderr_line("path=/short ").await;
    assert!(line.ends_with("complete=false"), "{line}");
}

// ERR-4 in the access log: a request whose client leaves before any response still gets its line,
// with nginx's 499 and complete=false.
#[tokio::test]
async fn access_log_has_a_line_for_a_request_left_unanswered() {
    let arrived = Arc::new(Notify::new());
    let signal = Arc::clone(&arrived);
    let (backend, _backend) = serve_backend(move |_req: Request<Incoming>| {
        let signal = Arc::clone(&signal);
        async move {
            signal.notify_one();
            std::future::pending::<()>().await;
            unreachable!()
        }
    })
    .await;
    let url = format!("http://{backend}");
    let mut proxy = Proxy::start(&["--backend", &url, "--listen", "127.0.0.1:0"]).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /abandoned HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Once the request reached the backend, the client goes.
    within("the request at the backend", arrived.notified()).await;
    drop(stream);
    let line = proxy.stderr_line("path=/abandoned ").await;
    assert!(line.contains(" status=499 "), "{line}");
    assert!(line.ends_with("complete=false"), "{line}");
}

// ERR-4 in the access log: a client that leaves mid-upload (its body cut off, buffered or streamed)
// is logged with 499, like one that leaves while the backend thinks, not with the 502 the proxy
// made for nobody.
#[tokio::test]
async fn access_log_has_499_for_a_client_leaving_mid_body() {
    let (backend, _backend) = serve_backend(|req: Request<Incoming>| async move {
        // Reads what comes, and never answers: only the proxy can end the exchange.
        let _ = req.into_body().collect().await;
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let url = format!("http://{backend}");
    let mut proxy = Proxy::start(&["--backend", &url, "--listen", "127.0.0.1:0"]).await;
    // Under `request_body_buffer_size` (buffered), then over it (streamed to the backend).
    for (path, declared) in [("/buffered", 10), ("/streamed", 2_000_000)] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {declared}\r\n\r\nabc");
        stream.write_all(head.as_bytes()).await.unwrap();
        drop(stream);
        let line = proxy.stderr_line(&format!("path={path} ")).await;
        assert!(line.contains(" status=499 "), "{line}");
        assert!(line.ends_with("complete=false"), "{line}");
    }
}

/// A backend that answers each request on a connection with the number of its header lines.
async fn counting_backend() -> (SocketAddr, Task) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut lines = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line != "\r\n" {
                        lines += 1;
                        continue;
                    }
                    let body = format!("{}", lines - 1);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    lines = 0;
                }
            });
        }
    });
    (addr, Task(task))
}

// LIM-2: a route allowing more request headers, or a larger head, than hyper's defaults (100
// fields, about 400 KiB) gets what it allows; its own limits still answer 431 past them.
#[tokio::test]
async fn lim_2_route_limits_above_hyper_defaults_are_honoured() {
    let (backend, _backend) = counting_backend().await;
    let file = config_file(
        "big-heads.toml",
        &format!(
            r#"
[[routes]]
path = "/"
backend = "http://{backend}"
max_request_headers = 300
max_request_header_bytes = 1000000
"#
        ),
    );
    let proxy = Proxy::with_config(&file).await;
    let head = |fields: usize, size: usize| {
        let mut req = Request::get("/").header("host", "a");
        for i in 0..fields {
            req = req.header(format!("x-h{i}"), "v".repeat(size));
        }
        req.body(Full::new(Bytes::new())).unwrap()
    };
    // 250 fields: past hyper's 100. The backend sees them and the proxy's own lines.
    let (status, _, body) = send(proxy.addr, head(250, 1)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.parse::<usize>().unwrap() > 250, "{body}");
    // 100 fields of 6 000 bytes: 600 KB, past hyper's 400 KiB buffer.
    let (status, _, _) = send(proxy.addr, head(100, 6_000)).await;
    assert_eq!(status, StatusCode::OK);
    // The route's own count limit.
    let (status, _, _) = send(proxy.addr, head(300, 1)).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn check_accepts_a_good_file() {
    let file = config_file(
        "good.toml",
        "[[routes]]\nbackend = \"http://127.0.0.1:4000\"\n",
    );
    let (status, stdout, stderr) =
        run_to_end(&["--check", "--config", file.to_str().unwrap()]).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

#[tokio::test]
async fn check_names_key_value_and_line_of_every_error() {
    // CFG-2: every error, each with its option, value and line.
    let file = config_file(
        "bad.toml",
        "[pool]\npool_size = 0\n\n[[routes]]\nbackend = \"http://127.0.0.1:4000\"\npool_timeout = 0\nforwarded_headers = \"append\"\n",
    );
    let (status, stdout, stderr) =
        run_to_end(&["--check", "--config", file.to_str().unwrap()]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("bad.toml:2:"), "{stderr}");
    assert!(stderr.contains("pool.pool_size` = 0"), "{stderr}");
    assert!(stderr.contains("bad.toml:6:"), "{stderr}");
    assert!(stderr.contains("routes[0].pool_timeout` = 0"), "{stderr}");
}

#[tokio::test]
async fn unknown_key_is_rejected_with_its_line() {
    // CFG-2: unknown keys are errors, at start-up as with --check.
    let file = config_file(
        "unknown.toml",
        "[[routes]]\nbackend = \"http://127.0.0.1:4000\"\nstrip_paht = \"/api\"\n",
    );
    for args in [
        &["--check", "--config", file.to_str().unwrap()][..],
        &[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let (status, stdout, stderr) = run_to_end(args).await;
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("unknown.toml:3:"), "{stderr}");
        assert!(stderr.contains("`strip_paht`"), "{stderr}");
        assert!(stderr.contains("did you mean `strip_path`"), "{stderr}");
    }
}

#[tokio::test]
async fn missing_file_and_bad_flags_exit_2() {
    let (status, _, stderr) =
        run_to_end(&["--check", "--config", "/nonexistent/reverseit.toml"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("/nonexistent/reverseit.toml"), "{stderr}");

    let (status, _, stderr) =
        run_to_end(&["--backend", "ftp://h", "--listen", "127.0.0.1:0"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("--backend") && stderr.contains("ftp://h"),
        "{stderr}"
    );

    let (status, _, _) = run_to_end(&["--check"]).await;
    assert_eq!(status.code(), Some(2));
}

#[tokio::test]
async fn port_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, stdout, stderr) =
        run_to_end(&["--backend", "http://127.0.0.1:4000", "--listen", &addr]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains(&addr), "{stderr}");
}

#[tokio::test]
async fn sigterm_lets_a_slow_response_finish_then_exits_0() {
    let arrived = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (backend, _b) = serve_backend({
        let arrived = Arc::clone(&arrived);
        let release = Arc::clone(&release);
        move |_req| {
            let arrived = Arc::clone(&arrived);
            let release = Arc::clone(&release);
            async move {
                arrived.notify_one();
                release.notified().await;
                Response::new(Full::new(Bytes::from_static(b"finished")))
            }
        }
    })
    .await;
    let mut proxy = Proxy::start(&[
        "--backend",
        &format!("http://{backend}"),
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    let addr = proxy.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow").await });
    within("request at the backend", arrived.notified()).await;

    proxy.terminate();
    proxy.stderr_line("shutting down").await;
    // No new connections once shutdown began.
    assert!(TcpStream::connect(addr).await.is_err());

    release.notify_one();
    let (status, _, body) = within("slow response", slow).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "finished");
    let exit = proxy.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "{}", proxy.stderr.lock().unwrap());
}

#[tokio::test]
async fn stalled_request_head_is_cut_off() {
    // Slowloris: a head that never completes does not hold a connection for long.
    let (backend, _b) = named_backend("a").await;
    let file = config_file(
        "slowloris.toml",
        &format!(
            "[server]\nheader_read_timeout = 200\n\n[[routes]]\nbackend = \"http://{backend}\"\n"
        ),
    );
    let proxy = Proxy::with_config(&file).await;
    let mut stalled = TcpStream::connect(proxy.addr).await.unwrap();
    stalled
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = within("stalled connection closed", stalled.read(&mut buf))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "expected a close, got {:?}", &buf[..n]);
    // A prompt client is served as usual.
    assert_eq!(get(proxy.addr, "/ok").await.0, StatusCode::OK);
}

// STR-3, POOL-2: a client that stops reading a response holds it in a full socket; after three
// whole watchdog periods without a byte taken its connection is dropped, and with it the backend
// connection the response came on (which would otherwise hold a pool slot for as long as the
// client stays).
#[tokio::test]
async fn a_client_that_stopped_reading_is_dropped_with_its_backend_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (cut_tx, cut_rx) = tokio::sync::oneshot::channel();
    // An endless chunked response, written until the proxy's side of the connection goes away.
    let _backend = Task(tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        let mut out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        let chunk = [b'x'; 65536];
        loop {
            out.extend_from_slice(b"10000\r\n");
            out.extend_from_slice(&chunk);
            out.extend_from_slice(b"\r\n");
            if s.write_all(&out).await.is_err() {
                let _ = cut_tx.send(());
                return;
            }
            out.clear();
        }
    }));
    let file = config_file(
        "stalled-reader.toml",
        &format!(
            "[server]\nheader_read_timeout = 100\n\n[[routes]]\nbackend = \"http://{backend}\"\n"
        ),
    );
    let mut proxy = Proxy::with_config(&file).await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    client
        .write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The client reads nothing: the proxy fills its socket, then stops reading the backend.
    within("the backend connection cut", cut_rx).await.unwrap();
    let line = proxy.stderr_line("path=/endless ").await;
    assert!(line.ends_with("complete=false"), "{line}");
    drop(client);
}

// ERR-6, LIM-1, LIM-2: the heads hyper refuses before any request exists (a space before a colon,
// a target over its limit, more fields than allowed) get the proxy's text/plain page like every
// status the proxy makes, and the connection closes.
#[tokio::test]
async fn heads_hyper_refuses_get_the_proxys_text_page() {
    let (backend, _b) = named_backend("a").await;
    let url = format!("http://{backend}");
    let proxy = Proxy::start(&["--backend", &url, "--listen", "127.0.0.1:0"]).await;
    let many_fields: String = (0..150).map(|i| format!("x-{i}: y\r\n")).collect();
    for (head, status, text) in [
        (
            "GET / HTTP/1.1\r\nHost : x\r\n\r\n".to_owned(),
            "400 Bad Request",
            "Bad Request",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)),
            "414 URI Too Long",
            "URI Too Long",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\n{many_fields}\r\n"),
            "431 Request Header Fields Too Large",
            "Request Header Fields Too Large",
        ),
    ] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        within("the answer and the close", stream.read_to_end(&mut answer))
            .await
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{answer}"
        );
        assert!(
            head.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
            "{answer}"
        );
        assert!(head.contains("\r\nconnection: close\r\n"), "{answer}");
        assert_eq!(body, text);
    }
    // A good request on a fresh connection is answered as before.
    assert_eq!(get(proxy.addr, "/ok").await.0, StatusCode::OK);
}

#[tokio::test]
async fn max_connections_holds_extra_clients_in_the_queue() {
    let (backend, _b) = named_backend("a").await;
    let file = config_file(
        "maxconn.toml",
        &format!("[server]\nmax_connections = 1\n\n[[routes]]\nbackend = \"http://{backend}\"\n"),
    );
    let proxy = Proxy::with_config(&file).await;

    // The first client holds the only slot with a keep-alive connection.
    let io = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut first, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    let first_conn = tokio::spawn(conn);
    let req = || {
        Request::get("/")
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(
        within("first", first.send_request(req()))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // The second is not served while the first is open...
    let addr = proxy.addr;
    let mut second = tokio::spawn(async move { get(addr, "/").await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut second)
            .await
            .is_err(),
        "a second connection was served beyond max_connections = 1"
    );
    // ...and is once the first closes.
    drop(first);
    first_conn.abort();
    assert_eq!(within("second", second).await.unwrap().0, StatusCode::OK);
}

#[tokio::test]
async fn tls_listener_serves_h2_by_alpn() {
    // H2-1: HTTPS with ALPN h2 toward the client, HTTP/1.1 toward the backend.
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let cert = config_file("tls-cert.pem", &leaf.pem());
    let key = config_file("tls-key.pem", &leaf_key.serialize_pem());

    let (backend, _b) = named_backend("a").await;
    let file = config_file(
        "tls.toml",
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n[[routes]]\nbackend = \"http://{backend}\"\n",
            cert.file_name().unwrap().to_str().unwrap(),
            key.file_name().unwrap().to_str().unwrap(),
        ),
    );
    let proxy = Proxy::with_config(&file).await;
    assert_eq!(proxy.ready, format!("listening on https://{}", proxy.addr));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = within("TLS handshake", connector.connect(name, tcp))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!(
        "https://localhost:{}/secure?x=1",
        proxy.addr.port()
    ))
    .body(Full::new(Bytes::new()))
    .unwrap();
    let resp = within("h2 request", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"a /secure?x=1 x-route=-");
}

#[tokio::test]
async fn plain_listener_accepts_prior_knowledge_h2c() {
    // H2-1: h2c with prior knowledge on the plain listener.
    let (backend, _b) = named_backend("a").await;
    let proxy = Proxy::start(&[
        "--backend",
        &format!("http://{backend}"),
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/h2c", proxy.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = within("h2c request", sender.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"a /h2c x-route=-");
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_then_exits_0() {
    let mut proxy = Proxy::start(&["--listen", "127.0.0.1:0"]).await;
    let (mut ws, _) = within(
        "WebSocket connect",
        tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr)),
    )
    .await
    .expect("WebSocket handshake through the proxy");
    ws.send(Message::text("up?")).await.unwrap();
    assert_eq!(
        within("echo", ws.next()).await.unwrap().unwrap(),
        Message::text("up?")
    );

    proxy.terminate();
    match within("close on shutdown", ws.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // Reading on sends tungstenite's queued close reply, completing the closing handshake.
    while let Some(Ok(_)) = within("end of the WebSocket", ws.next()).await {}
    let exit = proxy.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "{}", proxy.stderr.lock().unwrap());
}
