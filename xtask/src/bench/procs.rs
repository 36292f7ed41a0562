//! Child processes that are always killed by PID (on drop, so also on an error or a panic), pinned to
//! a core with `taskset`, and what `/proc` says about them.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The core the proxy under test has to itself.
pub(crate) const PROXY_CORE: usize = 1;
/// The core shared by the backends and the load generators.
pub(crate) const LOAD_CORE: usize = 0;

/// A running child process, killed (SIGKILL, by its PID) and reaped when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log` (stdout piped instead when `piped`).
    pub(crate) fn spawn(
        name: &str,
        cmd: &mut Command,
        log: &Path,
        piped: bool,
    ) -> Result<Proc, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        if piped {
            cmd.stdout(Stdio::piped()).stdin(Stdio::piped());
        } else {
            cmd.stdout(out).stdin(Stdio::null());
        }
        cmd.stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({cmd:?}): {e}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited early: {status}", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// The piped stdout, as lines.
    pub(crate) fn lines(&mut self) -> Result<std::io::Lines<BufReader<ChildStdout>>, String> {
        let out = self
            .child
            .stdout
            .take()
            .ok_or_else(|| format!("{}: stdout is not piped", self.name))?;
        Ok(BufReader::new(out).lines())
    }

    /// The piped stdin.
    pub(crate) fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.child.stdin.as_mut()
    }

    /// Waits for the process to exit by itself, killing it after `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("{} failed: {status}", self.name)),
                Ok(None) if start.elapsed() > timeout => {
                    return Err(format!("{} did not finish within {timeout:?}", self.name));
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("{}: {e}", self.name)),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // `Child::kill` is `kill(pid, SIGKILL)`: only this process, never a name match.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program args…` run through `taskset -c core`, which execs it: the child's PID is the program's.
pub(crate) fn pinned(core: usize, program: &str) -> Command {
    let program = find(program).map_or_else(|| program.into(), PathBuf::into_os_string);
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &core.to_string()]).arg(program);
    cmd
}

/// Waits until `port` on loopback accepts connections, and `proc` is still running.
pub(crate) fn wait_port(proc: &mut Proc, port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        proc.check_alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(15) {
            return Err(format!("{} does not listen on {addr}", proc.name));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// User plus system CPU time of a whole process (every thread, live or exited), in seconds.
pub(crate) fn cpu_seconds(pid: u32, clk_tck: f64) -> Result<f64, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name, which is in parentheses and may contain spaces: state is field
    // 3, utime 14 and stime 15 (proc(5)).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64 / clk_tck)
            .ok_or_else(|| format!("/proc/{pid}/stat: no field {}", i + 3))
    };
    Ok(tick(11)? + tick(12)?)
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub(crate) fn status_kib(pid: u32, key: &str) -> Result<u64, String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status: no {key}"))
}

/// Clock ticks per second, for `/proc/PID/stat` times.
pub(crate) fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Where `program` is: on `PATH`, or in the system folders a non-root `PATH` lacks (nginx and
/// HAProxy live in `/usr/sbin`).
pub(crate) fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// One line of a command's output (stdout, else stderr), for version strings.
pub(crate) fn first_line(program: &str, args: &[&str]) -> String {
    let Ok(out) = Command::new(program).args(args).output() else {
        return format!("{program}: not found");
    };
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}
