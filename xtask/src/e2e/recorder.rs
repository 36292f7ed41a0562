//! A recording HTTP/1.1 backend for the smuggling cases: it parses what the proxy sends strictly
//! (CRLF lines, token names, no space before a colon, one framing), remembers every request, and
//! answers each with a small 200. A byte stream it cannot parse is recorded as malformed.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Prefix of [`Seen::malformed`] when the proxy closed the connection inside a request body: the
/// request was cut off, never completed.
pub(crate) const TRUNCATED: &str = "truncated: ";

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// `None` when well-formed, else what was wrong.
    pub(crate) malformed: Option<String>,
}

impl Seen {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The running recorder; its accept thread lives as long as the process (it holds no child).
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    pub(crate) fn start() -> Result<Recorder, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("recorder: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("recorder: {e}"))?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                thread::spawn(move || serve(stream, &log));
            }
        });
        Ok(Recorder { addr, seen })
    }

    /// Everything recorded since the last call.
    pub(crate) fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("recorder lock poisoned"))
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    loop {
        match read_request(&mut r) {
            Ok(None) => return,
            Ok(Some(seen)) => {
                let broken = seen.malformed.is_some();
                log.lock().expect("recorder lock poisoned").push(seen);
                if broken {
                    return;
                }
                let reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nrecorded\n";
                if out.write_all(reply).is_err() {
                    return;
                }
            }
            Err(why) => {
                log.lock().expect("recorder lock poisoned").push(Seen {
                    method: String::new(),
                    target: String::new(),
                    headers: Vec::new(),
                    body: Vec::new(),
                    malformed: Some(why),
                });
                return;
            }
        }
    }
}

/// One CRLF-terminated line, without the CRLF; a bare LF or CR is an error.
fn line(r: &mut impl BufRead) -> Result<Option<String>, String> {
    let mut buf = Vec::new();
    let n = r
        .read_until(b'\n', &mut buf)
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\r\n") {
        return Err(format!(
            "line not ended by CRLF: {:?}",
            String::from_utf8_lossy(&buf)
        ));
    }
    buf.truncate(buf.len() - 2);
    if buf.contains(&b'\r') || buf.contains(&b'\n') {
        return Err("bare CR or LF inside a line".into());
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| "non-UTF-8 line".into())
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn read_request(r: &mut impl BufRead) -> Result<Option<Seen>, String> {
    let Some(start) = line(r)? else {
        return Ok(None);
    };
    let parts: Vec<&str> = start.split(' ').collect();
    if parts.len() != 3 || !is_token(parts[0]) || parts[2] != "HTTP/1.1" {
        return Err(format!("bad request line {start:?}"));
    }
    let mut headers = Vec::new();
    loop {
        let l = line(r)?.ok_or("connection closed inside the head")?;
        if l.is_empty() {
            break;
        }
        if l.starts_with([' ', '\t']) {
            return Err(format!("obs-fold line {l:?}"));
        }
        let (name, value) = l
            .split_once(':')
            .ok_or(format!("header without colon {l:?}"))?;
        if !is_token(name) {
            return Err(format!("bad header name {name:?}"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let get = |n: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let cl = get("content-length");
    let te = get("transfer-encoding");
    if !cl.is_empty() && !te.is_empty() {
        return Err("both Content-Length and Transfer-Encoding".into());
    }
    if cl.len() > 1 || te.len() > 1 {
        return Err("repeated framing header".into());
    }
    if get("host").len() != 1 {
        return Err("not exactly one Host".into());
    }
    let te = te.first().map(|s| (*s).to_owned());
    let cl = cl.first().map(|s| (*s).to_owned());
    let (body, malformed) = match read_body(r, te.as_deref(), cl.as_deref()) {
        Ok(body) => (body, None),
        Err((partial, why)) => (partial, Some(why)),
    };
    Ok(Some(Seen {
        method: parts[0].to_owned(),
        target: parts[1].to_owned(),
        headers,
        body,
        malformed,
    }))
}

/// The body by its framing; on an error, what was read so far and why.
fn read_body(
    r: &mut impl BufRead,
    te: Option<&str>,
    cl: Option<&str>,
) -> Result<Vec<u8>, (Vec<u8>, String)> {
    let mut body = Vec::new();
    if let Some(te) = te {
        if !te.eq_ignore_ascii_case("chunked") {
            return Err((body, format!("transfer-encoding {te:?}")));
        }
        loop {
            let size = match line(r) {
                Ok(Some(l)) => l,
                Ok(None) => return Err((body, format!("{TRUNCATED}closed inside a chunked body"))),
                Err(e) => return Err((body, e)),
            };
            let Ok(n) = usize::from_str_radix(&size, 16) else {
                return Err((body, format!("chunk size {size:?}")));
            };
            if n == 0 {
                // No trailers expected from the proxy: just the final CRLF.
                return match line(r) {
                    Ok(Some(end)) if end.is_empty() => Ok(body),
                    Ok(Some(end)) => Err((body, format!("trailer {end:?}"))),
                    Ok(None) => Err((body, format!("{TRUNCATED}closed before the last CRLF"))),
                    Err(e) => Err((body, e)),
                };
            }
            let mut chunk = vec![0; n];
            if let Err(e) = r.read_exact(&mut chunk) {
                return Err((body, format!("{TRUNCATED}inside a chunk: {e}")));
            }
            body.extend_from_slice(&chunk);
            match line(r) {
                Ok(Some(crlf)) if crlf.is_empty() => {}
                Ok(Some(_)) => return Err((body, "chunk not followed by CRLF".into())),
                Ok(None) => return Err((body, format!("{TRUNCATED}closed after a chunk"))),
                Err(e) => return Err((body, e)),
            }
        }
    }
    if let Some(cl) = cl {
        let Ok(n) = cl.parse::<usize>() else {
            return Err((body, format!("content-length {cl:?}")));
        };
        body = vec![0; n];
        if let Err(e) = r.read_exact(&mut body) {
            return Err((Vec::new(), format!("{TRUNCATED}inside the body: {e}")));
        }
    }
    Ok(body)
}
