//! Child processes for the end-to-end run: every one is tracked by PID and ended by PID, on drop (so
//! also on an error or a panic) and when its scenario runs out of time.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The PIDs started on behalf of one scenario (or of the shared set-up), so the runner can kill them
/// when the scenario overstays its timeout, which unblocks whatever the scenario waits on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope(Arc<Mutex<Vec<u32>>>);

impl Scope {
    fn add(&self, pid: u32) {
        self.0.lock().expect("scope lock poisoned").push(pid);
    }

    fn remove(&self, pid: u32) {
        self.0
            .lock()
            .expect("scope lock poisoned")
            .retain(|p| *p != pid);
    }

    /// SIGKILL to every process of the scope still registered.
    pub(crate) fn kill_all(&self) {
        let pids = std::mem::take(&mut *self.0.lock().expect("scope lock poisoned"));
        for pid in pids {
            signal(pid, "KILL");
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Scope> = RefCell::new(Scope::default());
}

/// Makes `scope` the one that processes started from this thread register with.
pub(crate) fn enter(scope: Scope) {
    CURRENT.with(|c| *c.borrow_mut() = scope);
}

fn current() -> Scope {
    CURRENT.with(|c| c.borrow().clone())
}

/// Sends `SIG` (`TERM`, `KILL`) to one PID through the shell's `kill`: std has no signal API and
/// the workspace forbids `unsafe`.
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A long-running child (a backend, the proxy): stderr (and stdout unless taken) go to a log file.
/// Dropping it sends SIGTERM, waits a little, then SIGKILL, and reaps it.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Child,
    scope: Scope,
    log: std::path::PathBuf,
}

impl Proc {
    /// Starts `cmd`, logging to `log`. With `take_stdout`, stdout is piped for [`Proc::stdout`].
    pub(crate) fn spawn(
        name: &str,
        cmd: &mut Command,
        log: &Path,
        take_stdout: bool,
    ) -> Result<Proc, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        if take_stdout {
            cmd.stdout(Stdio::piped());
        } else {
            cmd.stdout(out);
        }
        cmd.stderr(err).stdin(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        let scope = current();
        scope.add(child.id());
        Ok(Proc {
            name: name.to_owned(),
            child,
            scope,
            log: log.to_owned(),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The piped stdout (once).
    pub(crate) fn stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Whether it has exited, and how.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for it to exit.
    pub(crate) fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of its log, for a failure message.
    pub(crate) fn log_tail(&self) -> String {
        tail(&self.log, 12)
    }

    /// Waits until `addr` accepts TCP connections, failing early if the process exits.
    pub(crate) fn wait_port(&mut self, addr: SocketAddr, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening on {addr}:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not listening on {addr} after {limit:?}:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), "TERM");
            if self.wait_for(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
        self.scope.remove(self.child.id());
    }
}

/// What a short-lived command printed and how it ended.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Output {
    pub(crate) fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub(crate) fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs a short-lived command to completion, killed by PID once `limit` passes.
pub(crate) fn run(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let scope = current();
    let pid = child.id();
    scope.add(pid);
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("{cmd:?} still running after {limit:?}: killed"));
            }
            Err(e) => break Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    scope.remove(pid);
    let status = status?;
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Reads stdout lines on a thread, each with the instant it arrived.
pub(crate) fn lines(stdout: ChildStdout) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The last `n` lines of a file.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    tail_text(&std::fs::read_to_string(path).unwrap_or_default(), n)
}

/// The last `n` lines of a text.
pub(crate) fn tail_text(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
