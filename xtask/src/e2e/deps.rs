//! The third-party tools the end-to-end run drives: how each is found, how to install it, and
//! `cargo xtask e2e-deps`, which installs them all (idempotent, and quick once done).
//!
//! Everything comes from a package registry by name: Debian (curl, nghttp2-client, nginx, openssl),
//! PyPI (hypercorn, websockets, autobahntestsuite) into folders under `target/e2e`. Nothing is
//! downloaded from anywhere else.

use std::env;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc;

/// One tool a scenario may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// curl with HTTP/2 (Debian `curl`).
    Curl,
    /// nghttp2's `h2load` (Debian `nghttp2-client`).
    H2load,
    /// nghttp2's `nghttp` client (Debian `nghttp2-client`).
    Nghttp,
    /// nginx as a second backend (Debian `nginx`).
    Nginx,
    /// openssl, for the test CA (Debian `openssl`).
    Openssl,
    /// Python 3 with hypercorn and websockets, in `target/e2e/venv3`.
    PyPeers,
    /// Python 2.7 with Autobahn|Testsuite, in `target/e2e/py27`.
    Autobahn,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::Curl => "curl",
            Tool::H2load => "h2load",
            Tool::Nghttp => "nghttp",
            Tool::Nginx => "nginx",
            Tool::Openssl => "openssl",
            Tool::PyPeers => "python3 hypercorn+websockets (target/e2e/venv3)",
            Tool::Autobahn => "wstest (autobahntestsuite under Python 2.7, target/e2e/py27)",
        })
    }
}

/// Debian packages for the command-line tools.
const APT_PACKAGES: &[&str] = &[
    "curl",
    "ca-certificates",
    "nghttp2-client",
    "nginx",
    "openssl",
];

/// Where things live: the repository root and the e2e work folder.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) root: PathBuf,
    pub(crate) work: PathBuf,
}

impl Paths {
    pub(crate) fn new() -> Paths {
        // xtask's manifest folder is `<root>/xtask`.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in a subfolder of the workspace")
            .to_owned();
        let work = root.join("target").join("e2e");
        Paths { root, work }
    }

    pub(crate) fn venv3(&self) -> PathBuf {
        self.work.join("venv3")
    }

    pub(crate) fn python3(&self) -> PathBuf {
        self.venv3().join("bin").join("python")
    }

    pub(crate) fn py27_lib(&self) -> PathBuf {
        self.work.join("py27")
    }

    fn requirements3(&self) -> PathBuf {
        self.root.join("e2e").join("requirements.txt")
    }

    fn requirements27(&self) -> PathBuf {
        self.root.join("e2e").join("requirements-autobahn.txt")
    }
}

/// What was found on this machine.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    missing: Vec<(Tool, String)>,
    /// The Python 2.7 interpreter, when the machine has one.
    pub(crate) python27: Option<PathBuf>,
}

impl Tools {
    pub(crate) fn detect(paths: &Paths) -> Tools {
        let python27 = find_python27();
        let mut missing = Vec::new();
        for tool in [
            Tool::Curl,
            Tool::H2load,
            Tool::Nghttp,
            Tool::Nginx,
            Tool::Openssl,
            Tool::PyPeers,
            Tool::Autobahn,
        ] {
            if let Err(why) = check(tool, paths, python27.as_deref()) {
                missing.push((tool, why));
            }
        }
        Tools { missing, python27 }
    }

    /// `None` when present, else why not and how to install it.
    pub(crate) fn missing(&self, tool: Tool) -> Option<&str> {
        self.missing
            .iter()
            .find(|(t, _)| *t == tool)
            .map(|(_, why)| why.as_str())
    }

    /// Whether this missing tool is one that `e2e-deps` cannot install (no Python 2.7 here):
    /// such a skip is not a failure, even on CI.
    pub(crate) fn beyond_our_control(&self, tool: Tool) -> bool {
        tool == Tool::Autobahn && self.python27.is_none()
    }
}

fn check(tool: Tool, paths: &Paths, python27: Option<&Path>) -> Result<(), String> {
    let apt = |bin: &str, pkg: &str| {
        if which(bin).is_some() {
            Ok(())
        } else {
            Err(format!(
                "`{bin}` not found: install it with `apt-get install {pkg}` (or `cargo xtask e2e-deps`)"
            ))
        }
    };
    match tool {
        Tool::Curl => {
            apt("curl", "curl")?;
            let v = proc::run(
                Command::new("curl").arg("--version"),
                Duration::from_secs(10),
            )?;
            if v.stdout_str().contains("HTTP2") {
                Ok(())
            } else {
                Err("this curl has no HTTP/2: install Debian's `curl`".into())
            }
        }
        Tool::H2load => apt("h2load", "nghttp2-client"),
        Tool::Nghttp => apt("nghttp", "nghttp2-client"),
        Tool::Nginx => apt("nginx", "nginx"),
        Tool::Openssl => apt("openssl", "openssl"),
        Tool::PyPeers => stamped(
            &paths.venv3(),
            &paths.requirements3(),
            "run `cargo xtask e2e-deps` (creates target/e2e/venv3 from e2e/requirements.txt)",
        ),
        Tool::Autobahn => {
            if python27.is_none() {
                return Err(
                    "no Python 2.7 on this machine (Autobahn|Testsuite needs it; \
                     e.g. `pyenv install 2.7.18`, then `cargo xtask e2e-deps`)"
                        .into(),
                );
            }
            stamped(
                &paths.py27_lib(),
                &paths.requirements27(),
                "run `cargo xtask e2e-deps` (installs e2e/requirements-autobahn.txt into target/e2e/py27)",
            )
        }
    }
}

/// A folder counts as installed when its stamp holds the requirements it was installed from.
fn stamped(dir: &Path, requirements: &Path, hint: &str) -> Result<(), String> {
    let want = fs::read_to_string(requirements).unwrap_or_default();
    match fs::read_to_string(dir.join(".e2e-stamp")) {
        Ok(have) if have == want => Ok(()),
        Ok(_) => Err(format!("{} is out of date: {hint}", dir.display())),
        Err(_) => Err(format!("{} is missing: {hint}", dir.display())),
    }
}

/// An executable on PATH.
pub(crate) fn which(bin: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// `python2.7` on PATH that really runs (pyenv shims exist for versions not selected), else a
/// pyenv-installed 2.7.
fn find_python27() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = which("python2.7").into_iter().collect();
    let pyenv_root = env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(versions) = pyenv_root.map(|r| r.join("versions"))
        && let Ok(entries) = fs::read_dir(versions)
    {
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("2.7"))
            .map(|e| e.path().join("bin").join("python2.7"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        candidates.extend(found.into_iter().rev());
    }
    candidates.into_iter().find(|p| {
        proc::run(
            Command::new(p).args(["-c", "import sys; assert sys.version_info[:2] == (2, 7)"]),
            Duration::from_secs(10),
        )
        .is_ok_and(|o| o.status.success())
    })
}

/// `cargo xtask e2e-deps`: installs every missing tool. Debian packages need root.
pub(crate) fn install() -> Result<(), String> {
    let paths = Paths::new();
    fs::create_dir_all(&paths.work).map_err(|e| format!("{}: {e}", paths.work.display()))?;
    let tools = Tools::detect(&paths);

    let apt_missing = [
        Tool::Curl,
        Tool::H2load,
        Tool::Nghttp,
        Tool::Nginx,
        Tool::Openssl,
    ]
    .iter()
    .any(|t| tools.missing(*t).is_some());
    if apt_missing {
        apt_install()?;
    } else {
        eprintln!("e2e-deps: curl, nghttp2-client, nginx, openssl: present");
    }

    if tools.missing(Tool::PyPeers).is_some() {
        venv3(&paths)?;
    } else {
        eprintln!("e2e-deps: target/e2e/venv3: up to date");
    }

    match &tools.python27 {
        None => eprintln!(
            "e2e-deps: no Python 2.7 on this machine: the Autobahn scenario will be SKIPPED"
        ),
        Some(py) if tools.missing(Tool::Autobahn).is_some() => py27(&paths, py)?,
        Some(_) => eprintln!("e2e-deps: target/e2e/py27 (Autobahn|Testsuite): up to date"),
    }

    let after = Tools::detect(&paths);
    let still: Vec<String> = after
        .missing
        .iter()
        .filter(|(t, _)| !after.beyond_our_control(*t))
        .map(|(t, why)| format!("{t}: {why}"))
        .collect();
    if still.is_empty() {
        eprintln!("e2e-deps: everything test-e2e needs is installed");
        Ok(())
    } else {
        Err(format!("still missing:\n  {}", still.join("\n  ")))
    }
}

fn apt_install() -> Result<(), String> {
    let root = proc::run(Command::new("id").arg("-u"), Duration::from_secs(5))
        .is_ok_and(|o| o.stdout_str().trim() == "0");
    let cmd = format!(
        "apt-get install -y --no-install-recommends {}",
        APT_PACKAGES.join(" ")
    );
    if !root {
        return Err(format!(
            "not root: install the system packages with `sudo {cmd}`"
        ));
    }
    let install = || {
        let mut c = Command::new("apt-get");
        c.args([
            "-o",
            "DPkg::Lock::Timeout=300",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
        ])
        .args(APT_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive");
        eprintln!("e2e-deps: {cmd}");
        proc::run(&mut c, Duration::from_secs(900))
    };
    let first = install()?;
    if first.status.success() {
        return Ok(());
    }
    // A fresh machine may have no package lists yet.
    eprintln!("e2e-deps: apt-get install failed; running apt-get update and trying again");
    let update = proc::run(
        Command::new("apt-get").args(["-o", "DPkg::Lock::Timeout=300", "update", "-qq"]),
        Duration::from_secs(600),
    )?;
    if !update.status.success() {
        return Err(format!("apt-get update failed:\n{}", update.stderr_str()));
    }
    let second = install()?;
    if second.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd} failed:\n{}", second.stderr_str()))
    }
}

fn venv3(paths: &Paths) -> Result<(), String> {
    let venv = paths.venv3();
    let _ = fs::remove_dir_all(&venv);
    let python = which("python3").ok_or("python3 not found (install Debian's python3-venv)")?;
    eprintln!(
        "e2e-deps: creating {} with {}",
        venv.display(),
        python.display()
    );
    checked(
        Command::new(&python).args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (Debian: apt-get install python3-venv)",
    )?;
    checked(
        Command::new(paths.python3())
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(paths.requirements3()),
        "pip install -r e2e/requirements.txt",
    )?;
    stamp(&venv, &paths.requirements3())
}

fn py27(paths: &Paths, python: &Path) -> Result<(), String> {
    let lib = paths.py27_lib();
    let _ = fs::remove_dir_all(&lib);
    eprintln!(
        "e2e-deps: installing Autobahn|Testsuite for {} into {}",
        python.display(),
        lib.display()
    );
    // A `--target` folder rather than a virtualenv: Python 2.7's pip has no `venv` module, and this
    // keeps the interpreter's own site-packages untouched.
    checked(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-warn-script-location",
                "--target",
            ])
            .arg(&lib)
            .arg("-r")
            .arg(paths.requirements27())
            .env("PYTHONWARNINGS", "ignore"),
        "pip install -r e2e/requirements-autobahn.txt (Python 2.7)",
    )?;
    stamp(&lib, &paths.requirements27())
}

fn checked(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = proc::run(cmd, Duration::from_secs(900))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            out.stdout_str(),
            out.stderr_str()
        ))
    }
}

fn stamp(dir: &Path, requirements: &Path) -> Result<(), String> {
    let text =
        fs::read_to_string(requirements).map_err(|e| format!("{}: {e}", requirements.display()))?;
    fs::write(dir.join(".e2e-stamp"), text).map_err(|e| format!("{}: {e}", dir.display()))
}
