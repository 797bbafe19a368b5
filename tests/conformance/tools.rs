//! Finding the consumers, running them with bounded waits, and stopping
//! exactly the processes started here, also when a check fails or panics.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one consumer run may take before it counts as hung.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The absolute path of `name` on `PATH`. A missing consumer is a failure, never a skip.
pub fn tool(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "`{name}` is not on PATH: run scripts/install-test-deps and source the env file it writes (scripts/test does both)"
    ))
}

/// The PostgreSQL 17 bin directory Patroni's check needs (`PGIMG_PG_BINDIR`).
pub fn pg_bindir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("PGIMG_PG_BINDIR")
        .map(PathBuf::from)
        .ok_or(
            "PGIMG_PG_BINDIR is not set: source the env file scripts/install-test-deps writes",
        )?;
    for bin in [
        "pg_ctl",
        "initdb",
        "pg_controldata",
        "pg_basebackup",
        "postgres",
        "pg_isready",
    ] {
        if !is_executable(&dir.join(bin)) {
            return Err(format!("PGIMG_PG_BINDIR={} has no {bin}", dir.display()));
        }
    }
    Ok(dir)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A started process that is killed and reaped when dropped, so that a
/// failing assertion never leaves it behind. Only this one pid is signalled.
pub struct Guard {
    child: Option<Child>,
}

impl Guard {
    pub fn new(child: Child) -> Self {
        Guard { child: Some(child) }
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("guarded child")
    }

    /// Stops the process now and waits for it (bounded: SIGKILL cannot be ignored).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a finished consumer said.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout and stderr together, as the consumer's own message.
    pub fn text(&self) -> String {
        let mut t = String::new();
        for part in [&self.stdout, &self.stderr] {
            let part = part.trim_end();
            if !part.is_empty() {
                if !t.is_empty() {
                    t.push('\n');
                }
                t.push_str(part);
            }
        }
        t
    }

    /// The consumer's message with its exit status, for a failure report.
    pub fn report(&self) -> String {
        let status = match self.code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let text = self.text();
        if text.is_empty() {
            format!("({status}, no output)")
        } else {
            format!("({status})\n{text}")
        }
    }
}

/// Runs a command to completion with a bounded wait; stdin is empty.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let shown = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let mut guard = Guard::new(child);
    let mut out_pipe = guard.child().stdout.take().expect("piped stdout");
    let mut err_pipe = guard.child().stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match guard.child().try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                guard.stop();
                return Err(format!("{shown} did not finish within {timeout:?}; killed"));
            }
            Err(e) => return Err(format!("waiting for {shown}: {e}")),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// One line per consumer: the versions this run checks against.
pub fn versions() -> &'static [(String, Result<String, String>)] {
    static VERSIONS: OnceLock<Vec<(String, Result<String, String>)>> = OnceLock::new();
    VERSIONS.get_or_init(|| {
        let v = collect_versions();
        // Straight to the process's stderr, so that the log shows it even
        // when the test harness captures the output of passing tests.
        let mut text = String::from("conformance: consumers checked against:\n");
        for (name, r) in &v {
            match r {
                Ok(ver) => text.push_str(&format!("  {name:<16} {ver}\n")),
                Err(e) => text.push_str(&format!("  {name:<16} MISSING: {e}\n")),
            }
        }
        let _ = std::io::stderr().write_all(text.as_bytes());
        v
    })
}

/// Fails when any consumer is missing.
pub fn require_all() -> Result<(), String> {
    let missing: Vec<String> = versions()
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n"))
    }
}

fn first_line(cmd: &mut Command) -> Result<String, String> {
    let out = run(cmd, Duration::from_secs(30))?;
    if !out.success() {
        return Err(out.report());
    }
    out.text()
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "printed no version".to_string())
}

/// The interpreter a Python script on PATH runs with (its `#!` line), so that
/// a package's version is read from the environment that tool really uses.
pub fn interpreter_of(script: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read(script).map_err(|e| format!("{}: {e}", script.display()))?;
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    first
        .strip_prefix("#!")
        .and_then(|s| s.split_whitespace().next())
        .map(PathBuf::from)
        .ok_or_else(|| format!("{} has no #! line", script.display()))
}

fn py_version(script_tool: &str, dist: &str) -> Result<String, String> {
    let py = interpreter_of(&tool(script_tool)?)?;
    let v = first_line(Command::new(py).args([
        "-c",
        &format!("import importlib.metadata as m; print(m.version('{dist}'))"),
    ]))?;
    Ok(format!("{dist} {v}"))
}

fn collect_versions() -> Vec<(String, Result<String, String>)> {
    let simple = |name: &str, args: &[&str]| -> Result<String, String> {
        first_line(Command::new(tool(name)?).args(args))
    };
    vec![
        (
            "ksvalidator".into(),
            py_version("ksvalidator", "pykickstart"),
        ),
        (
            "cloud-init".into(),
            // It prints its own path first.
            simple("cloud-init", &["--version"]).map(|l| {
                let v = l.split_whitespace().last().unwrap_or_default();
                format!("cloud-init {v}")
            }),
        ),
        ("haproxy".into(), simple("haproxy", &["-v"])),
        ("patroni".into(), simple("patroni", &["--version"])),
        (
            "postgresql".into(),
            pg_bindir().and_then(|d| first_line(Command::new(d.join("postgres")).arg("--version"))),
        ),
        (
            "systemd-analyze".into(),
            simple("systemd-analyze", &["--version"]),
        ),
        ("pgbackrest".into(), simple("pgbackrest", &["version"])),
        ("etcd".into(), simple("etcd", &["--version"])),
        ("etcdctl".into(), simple("etcdctl", &["version"])),
        (
            "PyYAML".into(),
            simple(
                "python3",
                &[
                    "-c",
                    "import yaml, sys; print('PyYAML', yaml.__version__, 'on Python', sys.version.split()[0])",
                ],
            ),
        ),
        ("bash".into(), simple("bash", &["--version"])),
    ]
}
