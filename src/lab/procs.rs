//! The processes a lab starts: spawned as the lab user, recorded with their
//! start time, and signalled only after `/proc` confirms they are still the
//! same processes (same start time, command line under the lab root).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One started process, as recorded in `.lab/procs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proc {
    pub host: String,
    pub service: String,
    pub pid: u32,
    /// Field 22 of /proc/<pid>/stat: tells a reused pid apart.
    pub start: u64,
}

/// State letter and start time of a live process.
fn stat(pid: u32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

pub(super) fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, s)| s)
}

pub(super) fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub(super) fn owner(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Running (not a zombie), same start time, and its command line names the lab root.
pub(super) fn is_ours(p: &Proc, root: &Path) -> bool {
    match stat(p.pid) {
        Some((state, start)) if state != 'Z' && start == p.start => {
            cmdline(p.pid).contains(&*root.to_string_lossy())
        }
        _ => false,
    }
}

pub(super) fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z')
}

/// Sends the signal named like `kill -s` names it (`TERM`, `INT`, `KILL`,
/// `HUP`); a process that is already gone is not an error.
pub(super) fn signal(pid: u32, sig: &str) -> Result<(), String> {
    use rustix::process::{Pid, Signal, kill_process};
    let signal = match sig {
        "TERM" => Signal::TERM,
        "INT" => Signal::INT,
        "KILL" => Signal::KILL,
        "HUP" => Signal::HUP,
        other => return Err(format!("unknown signal `{other}`")),
    };
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("{pid} is not a process id"))?;
    match kill_process(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(format!("sending SIG{sig} to {pid:?}: {e}")),
    }
}

/// Waits (bounded) until none of `pids` runs; returns those still running.
pub(super) fn wait_gone(pids: &[(u32, u64)], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<u32> = pids
            .iter()
            .filter(|(pid, start)| matches!(stat(*pid), Some((s, st)) if s != 'Z' && st == *start))
            .map(|(p, _)| *p)
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `sig`, waits up to `grace`, then SIGKILLs what is left (and waits again, bounded).
pub(super) fn stop(pids: &[(u32, u64)], sig: &str, grace: Duration) -> Vec<u32> {
    for (pid, _) in pids {
        // A failure shows below: the process is still running and gets SIGKILL.
        let _ = signal(*pid, sig);
    }
    let left = wait_gone(pids, grace);
    if left.is_empty() {
        return left;
    }
    let rest: Vec<(u32, u64)> = pids
        .iter()
        .filter(|(p, _)| left.contains(p))
        .copied()
        .collect();
    for (pid, _) in &rest {
        super::say(format_args!(
            "  pid {pid} ({}) still runs {} s after SIG{sig}: SIGKILL",
            cmdline(*pid).chars().take(80).collect::<String>(),
            grace.as_secs()
        ));
        let _ = signal(*pid, "KILL");
    }
    wait_gone(&rest, Duration::from_secs(5))
}

pub(super) fn read_records(file: &Path) -> Vec<Proc> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub(super) fn append_record(file: &Path, p: &Proc) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let line = serde_json::to_string(p).map_err(std::io::Error::other)?;
    writeln!(f, "{line}")
}

/// Every running process of `uid` whose command line names `root`.
pub(super) fn under_root(uid: u32, root: &Path) -> Vec<(u32, u64)> {
    let root = root.to_string_lossy().into_owned();
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || owner(pid) != Some(uid) {
            continue;
        }
        if let Some((state, start)) = stat(pid)
            && state != 'Z'
            && cmdline(pid).contains(&root)
        {
            out.push((pid, start));
        }
    }
    out
}
