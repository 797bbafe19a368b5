//! `pgimg lab up --boot`: every host of a cluster as a container with systemd
//! as PID 1 (`systemd-nspawn`), installed by its own rendered install path.
//!
//! A boot-lab build is `crate::build` with `mapping::boot_mapping` (spec
//! addresses moved one to one into 198.18.0.0/15; nothing else). Each host
//! gets an overlay over one shared Debian 12 base (`scripts/boot-base`), the
//! EL9 stand-in layer (`standin.rs`, data in `lab/el9-standin.yml`), then its
//! install path exactly as rendered: a kickstart host as anaconda would
//! treat it (`%packages`, `firewall`, `services`, hostname, then each `%post`
//! chrooted, with its interpreter), a cloud-init host with its `user-data`
//! byte for byte as a NoCloud seed for the real cloud-init, which runs at
//! first boot. Each container lives in its own network namespace on one
//! private bridge without address, uplink or forwarding.
//!
//! Bookkeeping: `<root>/state.json`; per host `<root>/hosts/<h>/` (overlay
//! `upper`, `work`, `merged`, `console.log`); the build in `<root>/out`.

pub(crate) mod install;
pub(crate) mod mapping;
pub(crate) mod standin;
pub mod standins;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::model::{Cluster, Fleet};

/// Default location of the base built by `scripts/boot-base`.
pub const DEFAULT_BASE: &str = "/var/cache/pgimg/boot-base";
/// The test programs, bind-mounted read-only at the same path in every container.
pub const DEPS: &str = "/opt/pgimg-deps";
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const STOP_TIMEOUT: Duration = Duration::from_secs(45);
/// Units whose failure is an alert about the cluster, not a failed boot: the
/// DR slot check fails while its DR site is not streaming yet, which at first
/// boot is true for a while. `up` reports them; the boot test runs them again
/// once the cluster has converged and requires them to pass.
pub const MONITORS: &[&str] = &["pgimg-slot-check.service"];
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";

#[derive(Debug, Clone)]
pub struct Options {
    pub spec: PathBuf,
    pub cluster: Option<String>,
    /// Default `/tmp/pgimg-boot/<cluster>`.
    pub root: Option<PathBuf>,
    /// Distinguishes the bridge, namespaces and links of two boot labs on one machine.
    pub net: u8,
    pub roles: Option<PathBuf>,
    /// The base root file system (default `DEFAULT_BASE`, or `PGIMG_BOOT_BASE`).
    pub base: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallPath {
    Kickstart,
    CloudInit,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub site: String,
    pub roles: Vec<String>,
    /// Mapped (198.18.0.0/15).
    pub address: String,
    pub install: InstallPath,
    pub machine: String,
    pub netns: String,
    pub veth: String,
    /// The `systemd-nspawn` process while the container runs.
    pub nspawn_pid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteState {
    pub name: String,
    pub scope: String,
    pub standby_of: Option<String>,
    pub slot_name: String,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub cluster: String,
    pub root: PathBuf,
    pub base: PathBuf,
    pub bridge: String,
    pub sites: Vec<SiteState>,
    pub hosts: Vec<HostState>,
    /// How secrets reached the hosts (printed by `up` and `status`).
    pub secrets_delivery: String,
    /// The stand-ins' namespace and link (`standins.rs`), and their server while it runs.
    #[serde(default)]
    pub standins_netns: String,
    #[serde(default)]
    pub standins_veth: String,
    #[serde(default)]
    pub standins_pid: Option<u32>,
}

/// A boot lab on disk.
pub struct Boot {
    pub state: State,
}

fn fail(msg: impl Into<String>) -> Error {
    Error::Input(msg.into())
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(action, path, e)
}

pub fn default_root(cluster: &str) -> PathBuf {
    PathBuf::from("/tmp/pgimg-boot").join(cluster)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

/// A missing program is an error naming the Debian package that has it.
fn need(program: &str, package: &str) -> Result<(), Error> {
    match which(program) {
        Some(_) => Ok(()),
        None => Err(fail(format!(
            "`{program}` not found: install the Debian package `{package}` (scripts/install-test-deps does)"
        ))),
    }
}

/// Runs a command to completion; a non-zero exit is an error with its stderr.
fn run(cmd: &mut Command) -> Result<Output, Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("running {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<(), Error> {
    run(Command::new("ip").args(args)).map(|_| ())
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn is_mounted(path: &Path) -> bool {
    let p = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(&*p)))
        .unwrap_or(false)
}

/// Mount points at or under `path`, deepest first.
fn mounts_under(path: &Path) -> Vec<PathBuf> {
    let p = path.to_string_lossy().into_owned();
    let mut v: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| *m == p || m.starts_with(&format!("{p}/")))
        .map(PathBuf::from)
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    v.dedup();
    v
}

fn pick_cluster<'a>(fleet: &'a Fleet, name: Option<&str>) -> Result<&'a Cluster, Error> {
    match name {
        Some(n) => fleet
            .clusters
            .iter()
            .find(|c| c.name == n)
            .ok_or_else(|| fail(format!("no cluster `{n}` in the spec"))),
        None => match fleet.clusters.as_slice() {
            [c] => Ok(c),
            _ => Err(fail("the spec has several clusters; name one")),
        },
    }
}

fn validate(source: crate::source::SourceFile) -> Result<crate::Validated, Error> {
    crate::validate(source.clone(), false).map_err(|d| {
        let text: String = d
            .iter()
            .map(|x| crate::diag::render_human(x, Some(&source)))
            .collect();
        fail(format!("the spec is invalid:\n{text}"))
    })
}

/// The boot root a command works on: `--root`, else the default of the spec's cluster.
pub fn root_of(opts: &Options) -> Result<PathBuf, Error> {
    if let Some(r) = &opts.root {
        return Ok(if r.is_absolute() {
            r.clone()
        } else {
            std::env::current_dir()
                .map_err(io("reading the current directory", r))?
                .join(r)
        });
    }
    if let Some(c) = &opts.cluster {
        return Ok(default_root(c));
    }
    let v = validate(crate::load::spec(&opts.spec)?)?;
    Ok(default_root(&pick_cluster(&v.fleet, None)?.name))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io("creating", d))?;
    }
    std::fs::write(path, bytes).map_err(io("writing", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("setting the mode of", path))
}

/// `/proc/<pid>/task/*/children`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

impl Boot {
    pub fn root(&self) -> &Path {
        &self.state.root
    }

    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.state.root.join("hosts").join(host)
    }

    /// The host's root as the lab mounted it (valid while the lab is up).
    pub fn merged(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("merged")
    }

    /// The build the lab booted (`pgimg build` output with the boot mapping).
    pub fn out(&self) -> PathBuf {
        self.state.root.join("out")
    }

    pub fn host(&self, name: &str) -> Option<&HostState> {
        self.state.hosts.iter().find(|h| h.name == name)
    }

    fn host_mut(&mut self, name: &str) -> Option<&mut HostState> {
        self.state.hosts.iter_mut().find(|h| h.name == name)
    }

    pub fn site(&self, name: &str) -> Option<&SiteState> {
        self.state.sites.iter().find(|s| s.name == name)
    }

    fn save(&self) -> Result<(), Error> {
        let p = self.state.root.join("state.json");
        let text = serde_json::to_string_pretty(&self.state)
            .map_err(|e| fail(format!("serializing the boot lab state: {e}")))?;
        write_file(&p, text.as_bytes(), 0o644)
    }

    pub fn open(root: &Path) -> Result<Boot, Error> {
        let p = root.join("state.json");
        let text = std::fs::read_to_string(&p).map_err(io("reading", &p))?;
        let state = serde_json::from_str(&text)
            .map_err(|e| fail(format!("{}: not a boot lab state: {e}", p.display())))?;
        Ok(Boot { state })
    }

    /// The container's systemd (PID 1 inside), if the container runs.
    pub fn leader(&self, host: &str) -> Option<u32> {
        let h = self.host(host)?;
        let pid = h.nspawn_pid?;
        if !self.is_our_nspawn(h, pid) {
            return None;
        }
        let mut queue = children(pid);
        while let Some(p) = queue.pop() {
            if comm(p) == "systemd" {
                return Some(p);
            }
            queue.extend(children(p));
        }
        None
    }

    fn is_our_nspawn(&self, h: &HostState, pid: u32) -> bool {
        let c = cmdline(pid);
        c.contains("systemd-nspawn") && c.contains(&format!("--machine={}", h.machine))
    }

    /// A command inside a running container, as root, with EL9's PATH.
    pub fn command(&self, host: &str, args: &[&str]) -> Result<Command, Error> {
        let leader = self
            .leader(host)
            .ok_or_else(|| fail(format!("host `{host}`: its container is not running")))?;
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &leader.to_string(),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            // The container's root and working directory, not this process's.
            "-r",
            "-w",
            "--",
        ])
        .args(["/usr/bin/env", "-i"])
        .arg(format!("PATH={CONTAINER_PATH}"))
        .args(["LANG=C.UTF-8", "HOME=/root"])
        .args(args)
        .stdin(Stdio::null());
        Ok(c)
    }

    /// Runs a command inside a container; its output, whatever the exit status.
    pub fn exec(&self, host: &str, args: &[&str]) -> Result<Output, Error> {
        self.command(host, args)?
            .output()
            .map_err(|e| fail(format!("host `{host}`: running {args:?}: {e}")))
    }

    /// Stdout of a command inside a container that must succeed.
    pub fn sh(&self, host: &str, script: &str) -> Result<String, Error> {
        let out = self.exec(host, &["bash", "-c", script])?;
        if !out.status.success() {
            return Err(fail(format!(
                "host `{host}`: `{script}` failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `systemctl is-system-running` once the boot is over (polled: early in
    /// a boot systemctl cannot reach the manager yet), waiting at most `timeout`.
    pub fn system_state(&self, host: &str, timeout: Duration) -> Result<String, Error> {
        let t = Instant::now();
        loop {
            let out = self.exec(host, &["systemctl", "is-system-running"])?;
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let booting = s.is_empty() || s == "initializing" || s == "starting";
            if !booting {
                return Ok(s);
            }
            if t.elapsed() >= timeout {
                return Ok(format!(
                    "{} (boot not over after {} s)",
                    if s.is_empty() { "unreachable" } else { &s },
                    timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// How a host's boot ends: like `system_state`, until `deadline`, but a
    /// boot still `starting` whose failed or restarting units stay so for
    /// `FAILING_FOR` is over: a unit that waits for them (a bounded oneshot)
    /// would hold `starting` for many minutes more.
    fn boot_outcome(&self, host: &str, deadline: Instant) -> Result<String, Error> {
        const FAILING_FOR: Duration = Duration::from_secs(30);
        // A unit that systemd restarts is `activating` for a moment between
        // its `auto-restart` waits: only a longer clean spell ends a failing one.
        const CLEAN_FOR: Duration = Duration::from_secs(10);
        let mut failing_since: Option<Instant> = None;
        let mut last_failing: Option<Instant> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let s = self.system_state(host, Duration::ZERO)?;
            let Some((state, _)) = s.split_once(" (boot not over") else {
                return Ok(s);
            };
            if left.is_zero() {
                return Ok(format!(
                    "{state} (boot not over after {} s)",
                    BOOT_TIMEOUT.as_secs()
                ));
            }
            let failing = !self
                .sh(
                    host,
                    "systemctl list-units --state=failed,auto-restart --no-legend --plain | awk '{print $1}'",
                )
                .unwrap_or_default()
                .split_whitespace()
                .all(|u| MONITORS.contains(&u));
            if failing {
                last_failing = Some(Instant::now());
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= FAILING_FOR {
                    return Ok(format!(
                        "starting (units failing for {} s)",
                        FAILING_FOR.as_secs()
                    ));
                }
            } else if last_failing.is_none_or(|t| t.elapsed() >= CLEAN_FOR) {
                failing_since = None;
            }
            std::thread::sleep(Duration::from_secs(2).min(left));
        }
    }

    /// The failed units of a host, and those systemd keeps restarting
    /// (`Restart=` hides a unit that cannot start from `is-system-running`),
    /// with the tail of each one's journal.
    pub fn failed_units_report(&self, host: &str) -> String {
        self.failed_units_report_except(host, &[])
    }

    /// `failed_units_report` without the units named in `except`.
    pub fn failed_units_report_except(&self, host: &str, except: &[&str]) -> String {
        let mut out = String::new();
        let failed = self
            .sh(
                host,
                "systemctl list-units --state=failed,auto-restart --no-legend --plain | awk '{print $1}'",
            )
            .unwrap_or_default();
        for unit in failed.split_whitespace().filter(|u| !except.contains(u)) {
            out.push_str(&format!(
                "  host {host}: unit {unit} failed; journal tail:\n"
            ));
            let j = self
                .sh(
                    host,
                    &format!("journalctl -u {unit} --no-pager -n 15 -o cat || true"),
                )
                .unwrap_or_default();
            for l in j.lines() {
                out.push_str(&format!("    {l}\n"));
            }
        }
        out
    }

    /// Starts a host's container (after `up`'s install, or again after `stop_host`).
    pub fn start_host(&mut self, host: &str) -> Result<(), Error> {
        let h = self
            .host(host)
            .cloned()
            .ok_or_else(|| fail(format!("no host `{host}`")))?;
        if self.leader(host).is_some() {
            return Ok(());
        }
        let dir = self.host_dir(host);
        let console = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("console.log"))
            .map_err(io("opening", &dir))?;
        let console2 = console.try_clone().map_err(io("opening", &dir))?;
        // --register=no --keep-unit: the machine need not run systemd itself
        // (no machined, no scope); systemd-nspawn(1).
        // A cgroup of its own per container: with --keep-unit and no
        // machined, systemd-nspawn keeps the cgroup it starts in, and two
        // containers in one cgroup share the cgroups of their units (one
        // container's patroni.service would be the other's).
        let cgroups = cgroup_dirs(&h.machine);
        for d in &cgroups {
            std::fs::create_dir_all(d).map_err(io("creating", d))?;
        }
        let enter: String = cgroups
            .iter()
            .map(|d| format!("echo $$ > {}/cgroup.procs || exit 1; ", d.display()))
            .collect();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{enter}exec \"$@\""))
            .arg("sh")
            .arg("systemd-nspawn")
            // /tmp on the root file system, as on EL9, where tmp.mount is
            // opt-in (docs.redhat.com, RHEL migration planning guide,
            // "Temporary storage space"); nspawn mounts a tmpfs there unless told.
            .env("SYSTEMD_NSPAWN_TMPFS_TMP", "0")
            .args(["--quiet", "--boot", "--register=no", "--keep-unit"])
            .arg(format!("--machine={}", h.machine))
            .arg("--directory")
            .arg(self.merged(host))
            .arg(format!("--network-namespace-path=/run/netns/{}", h.netns))
            .arg(format!("--bind-ro={DEPS}"))
            // No name server: the lab resolves nothing outside it, and fails fast trying.
            .args([
                "--console=pipe",
                "--link-journal=no",
                "--timezone=off",
                "--resolv-conf=delete",
            ])
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console2)
            .process_group(0)
            .spawn()
            .map_err(|e| fail(format!("starting systemd-nspawn for `{host}`: {e}")))?;
        let pid = child.id();
        // The lab, not this process, owns the container from here on.
        std::mem::forget(child);
        if let Some(hm) = self.host_mut(host) {
            hm.nspawn_pid = Some(pid);
        }
        self.save()?;
        let t = Instant::now();
        while self.leader(host).is_none() {
            if t.elapsed() > Duration::from_secs(30) {
                return Err(fail(format!(
                    "host `{host}`: systemd did not start in its container within 30 s; see {}",
                    dir.join("console.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Stops a container: SIGTERM to systemd-nspawn halts it cleanly; after
    /// the bound, SIGKILL. `kill = true` kills it at once (a lost machine).
    pub fn stop_host(&mut self, host: &str, kill: bool) -> Result<(), Error> {
        let Some(h) = self.host(host).cloned() else {
            return Ok(());
        };
        if let Some(pid) = h.nspawn_pid
            && self.is_our_nspawn(&h, pid)
        {
            // SIGKILL to the container's PID 1 ends its whole PID namespace at
            // once, as a power cut would; SIGTERM to systemd-nspawn asks the
            // container's systemd to power off.
            let leader = self.leader(host);
            let kill_pid = |sig: &str, p: u32| {
                let _ = Command::new("kill")
                    .args([&format!("-{sig}"), &p.to_string()])
                    .status();
            };
            match (kill, leader) {
                (true, Some(l)) => kill_pid("KILL", l),
                _ => kill_pid("TERM", pid),
            }
            let t = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists() && self.is_our_nspawn(&h, pid) {
                if t.elapsed() > STOP_TIMEOUT {
                    if let Some(l) = self.leader(host) {
                        kill_pid("KILL", l);
                    }
                    kill_pid("KILL", pid);
                }
                if t.elapsed() > STOP_TIMEOUT + Duration::from_secs(10) {
                    return Err(fail(format!("host `{host}`: its container does not stop")));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if let Some(hm) = self.host_mut(host) {
            hm.nspawn_pid = None;
        }
        self.save()
    }

    pub fn status_text(&self) -> String {
        let mut s = format!(
            "boot lab {} at {} (bridge {}; secrets: {})\n",
            self.state.cluster,
            self.state.root.display(),
            self.state.bridge,
            self.state.secrets_delivery
        );
        for site in &self.state.sites {
            s.push_str(&format!("site {} (scope {})\n", site.name, site.scope));
            for name in &site.hosts {
                let Some(h) = self.host(name) else { continue };
                let state = if self.leader(name).is_some() {
                    self.system_state(name, Duration::from_secs(2))
                        .unwrap_or_else(|e| e.to_string())
                } else {
                    "stopped".into()
                };
                s.push_str(&format!(
                    "  {:<14} {:<14} {:<10} {:<20} {}\n",
                    h.name,
                    h.address,
                    match h.install {
                        InstallPath::Kickstart => "kickstart",
                        InstallPath::CloudInit => "cloud-init",
                    },
                    h.roles.join(","),
                    state
                ));
            }
        }
        s
    }

    /// Removes every container, mount, namespace, link and the bridge this
    /// lab created (by the names in its state), then its root.
    pub fn down(mut self) -> Result<(), Error> {
        let mut errors = Vec::new();
        let names: Vec<String> = self.state.hosts.iter().map(|h| h.name.clone()).collect();
        // Every container is asked to power off first, so they halt together.
        for h in self.state.hosts.clone() {
            if let Some(pid) = h.nspawn_pid
                && self.is_our_nspawn(&h, pid)
            {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
        }
        for h in &names {
            if let Err(e) = self.stop_host(h, false) {
                errors.push(e.to_string());
            }
        }
        for h in self.state.hosts.clone() {
            remove_cgroups(&h.machine);
            for m in mounts_under(&self.merged(&h.name)) {
                if run(Command::new("umount").arg(&m)).is_err() {
                    let _ = run(Command::new("umount").arg("-l").arg(&m));
                }
            }
            if netns_exists(&h.netns)
                && let Err(e) = ip(&["netns", "delete", &h.netns])
            {
                errors.push(e.to_string());
            }
            // Deleting the namespace deletes its end of the pair, and with it
            // this one, asynchronously.
            if link_exists(&h.veth)
                && let Err(e) = ip(&["link", "delete", &h.veth])
                && link_exists(&h.veth)
            {
                errors.push(e.to_string());
            }
        }
        let sdir = standins::dir_of(self.root());
        if let Some(pid) = self.state.standins_pid
            && standins::is_ours(pid, &sdir)
        {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let t = Instant::now();
            while standins::is_ours(pid, &sdir) && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if standins::is_ours(pid, &sdir) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        let (ns, veth) = (
            self.state.standins_netns.clone(),
            self.state.standins_veth.clone(),
        );
        if !ns.is_empty()
            && netns_exists(&ns)
            && let Err(e) = ip(&["netns", "delete", &ns])
        {
            errors.push(e.to_string());
        }
        if !veth.is_empty()
            && link_exists(&veth)
            && let Err(e) = ip(&["link", "delete", &veth])
            && link_exists(&veth)
        {
            errors.push(e.to_string());
        }
        if link_exists(&self.state.bridge)
            && let Err(e) = ip(&["link", "delete", &self.state.bridge])
        {
            errors.push(e.to_string());
        }
        release_nspawn_state();
        if errors.is_empty() {
            let root = self.state.root.clone();
            if !mounts_under(&root).is_empty() {
                return Err(fail(format!(
                    "{}: still has mounts; not removed",
                    root.display()
                )));
            }
            std::fs::remove_dir_all(&root).map_err(io("removing", &root))?;
            Ok(())
        } else {
            Err(fail(format!("boot lab down: {}", errors.join("; "))))
        }
    }
}

/// `pgimg lab up|status|down --boot`: the text to print.
pub fn command(action: crate::cli::LabAction) -> Result<String, Error> {
    use crate::cli::LabAction;
    let (LabAction::Up(a) | LabAction::Status(a) | LabAction::Down(a)) = &action;
    let opts = Options {
        spec: a.spec.clone(),
        cluster: a.cluster.clone(),
        root: a.root.clone(),
        net: a.net,
        roles: a.roles.clone(),
        base: None,
    };
    match action {
        LabAction::Up(_) => up(&opts).map(|b| b.status_text()),
        LabAction::Status(_) => Boot::open(&root_of(&opts)?).map(|b| b.status_text()),
        LabAction::Down(_) => Boot::open(&root_of(&opts)?)?.down().map(|()| String::new()),
    }
}

/// The Linux names of a host's namespace and link: short (IFNAMSIZ is 16).
fn names(net: u8, index: usize) -> (String, String) {
    (format!("pgboot{net}-h{index}"), format!("pgb{net}v{index}"))
}

/// Brings a boot lab up: builds, lays out, installs and boots every host;
/// waits until every host's systemd says the boot is over.
pub fn up(opts: &Options) -> Result<Boot, Error> {
    let t0 = Instant::now();
    need("systemd-nspawn", "systemd-container")?;
    need("nsenter", "util-linux")?;
    need("ip", "iproute2")?;
    let base = opts
        .base
        .clone()
        .or_else(|| std::env::var_os("PGIMG_BOOT_BASE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BASE));
    if !base.join(".pgimg-boot-base").is_file() {
        return Err(fail(format!(
            "no boot-lab base at {}: build it with scripts/boot-base (needs `debootstrap`, Debian package `debootstrap`; scripts/install-test-deps runs it)",
            base.display()
        )));
    }
    if !Path::new(DEPS).join("bin").is_dir() {
        return Err(fail(format!(
            "{DEPS} is missing: the boot lab runs the test programs scripts/install-test-deps installs there"
        )));
    }
    let source = crate::load::spec(&opts.spec)?;
    let v = validate(source)?;
    let cluster = pick_cluster(&v.fleet, opts.cluster.as_deref())?;
    let root = match &opts.root {
        Some(_) => root_of(opts)?,
        None => default_root(&cluster.name),
    };
    if root.join("state.json").exists() {
        return Err(fail(format!(
            "a boot lab is already at {}: `pgimg lab down --boot` it first",
            root.display()
        )));
    }
    if root.exists() {
        if !mounts_under(&root).is_empty() {
            return Err(fail(format!(
                "{} has mounts; not touching it",
                root.display()
            )));
        }
        std::fs::remove_dir_all(&root).map_err(io("removing", &root))?;
    }
    let mut m = mapping::boot_mapping(&v.fleet)?;
    let values = super::lab_secrets(&v.fleet, &m)?;
    let standins_plan = standins::plan(cluster, &m, &values);
    // The lab's name service: the stand-ins' names, in each host's /etc/hosts.
    m.names.insert(
        standins::ADDRESS.to_string(),
        standins_plan.names.iter().cloned().collect(),
    );
    let inputs = crate::BuildInputs {
        roles: match &opts.roles {
            Some(d) => crate::load::roles(d)?,
            None => crate::load::RoleTree::embedded(),
        },
        secrets: crate::load::SecretValues { values },
        mapping: m.clone(),
        overlays: crate::load::overlays(
            &crate::load::spec_dir(&opts.spec).join(crate::load::OVERLAYS),
        )?,
    };
    let tree = crate::build(&v, &inputs)?;
    std::fs::create_dir_all(&root).map_err(io("creating", &root))?;
    crate::write::write(&tree, &root.join("out"))?;

    let bridge = format!("pgbootbr{}", opts.net);
    let mut state = State {
        cluster: cluster.name.clone(),
        root: root.clone(),
        base: base.clone(),
        bridge: bridge.clone(),
        sites: Vec::new(),
        hosts: Vec::new(),
        secrets_delivery: String::new(),
        standins_netns: format!("pgboot{}-svc", opts.net),
        standins_veth: format!("pgb{}svc", opts.net),
        standins_pid: None,
    };
    let mut index = 0;
    for s in &cluster.sites {
        state.sites.push(SiteState {
            name: s.name.clone(),
            scope: s.scope.clone(),
            standby_of: s.standby_of.clone(),
            slot_name: s.slot_name.clone(),
            hosts: s.hosts.iter().map(|h| h.name.clone()).collect(),
        });
        for h in &s.hosts {
            index += 1;
            let (netns, veth) = names(opts.net, index);
            let address = m.addr(&h.address);
            mapping::check_address(&address)?;
            state.hosts.push(HostState {
                name: h.name.clone(),
                site: s.name.clone(),
                roles: h
                    .roles
                    .iter()
                    .map(|r| format!("{r:?}").to_lowercase())
                    .collect(),
                address,
                // As the reference example's comments say: hosts with a MAC
                // boot over PXE into their kickstart; the others are cloud
                // instances that read their user-data.
                install: if h.boot.mac.is_some() {
                    InstallPath::Kickstart
                } else {
                    InstallPath::CloudInit
                },
                machine: format!("pgboot{}-{}", opts.net, h.name),
                netns,
                veth,
                nspawn_pid: None,
            });
        }
    }
    for h in &state.hosts {
        if netns_exists(&h.netns) || link_exists(&h.veth) {
            return Err(fail(format!(
                "network namespace `{}` or link `{}` exists already: another boot lab uses --net {}",
                h.netns, h.veth, opts.net
            )));
        }
    }
    if link_exists(&bridge) {
        return Err(fail(format!(
            "bridge `{bridge}` exists already: another boot lab uses --net {}",
            opts.net
        )));
    }
    if netns_exists(&state.standins_netns) || link_exists(&state.standins_veth) {
        return Err(fail(format!(
            "network namespace `{}` or link `{}` exists already: another boot lab uses --net {}",
            state.standins_netns, state.standins_veth, opts.net
        )));
    }
    let mut boot = Boot { state };
    boot.save()?;
    let result = bring_up(&mut boot, t0, &standins_plan);
    if let Err(e) = result {
        eprintln!(
            "boot lab did not come up; `pgimg lab status --boot` and {}/hosts/*/console.log say more, `pgimg lab down --boot` cleans up",
            root.display()
        );
        return Err(e);
    }
    Ok(boot)
}

fn phase(t0: Instant, what: &str) {
    eprintln!("[{:>6.1} s] {what}", t0.elapsed().as_secs_f64());
}

fn bring_up(boot: &mut Boot, t0: Instant, plan: &standins::Plan) -> Result<(), Error> {
    // systemd-nspawn keeps per-container state in /run/systemd/nspawn and
    // refuses to remove it unless it is on a temporary file system, which
    // /run is not on machines that do not boot with systemd.
    let propagate = Path::new("/run/systemd/nspawn");
    if !is_mounted(propagate) && !run_is_tmpfs() {
        std::fs::create_dir_all(propagate).map_err(io("creating", propagate))?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "tmpfs"])
            .arg(propagate))?;
    }
    // One bridge, no address on this machine's side, so nothing is routed
    // or forwarded between the containers and anything else.
    let bridge = boot.state.bridge.clone();
    ip(&["link", "add", &bridge, "type", "bridge"])?;
    ip(&["link", "set", &bridge, "up"])?;
    for h in boot.state.hosts.clone() {
        ip(&["netns", "add", &h.netns])?;
        ip(&[
            "link", "add", &h.veth, "type", "veth", "peer", "name", "eth0", "netns", &h.netns,
        ])?;
        ip(&["link", "set", &h.veth, "master", &bridge, "up"])?;
        mapping::check_address(&h.address)?;
        let cidr = format!("{}/{}", h.address, mapping::PREFIX_LEN);
        ip(&["-n", &h.netns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", &h.netns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &h.netns, "link", "set", "lo", "up"])?;
    }
    phase(t0, "network: bridge, namespaces and links up");
    start_standins(boot, plan)?;
    phase(
        t0,
        &format!(
            "stand-ins at {}: metadata service, SSM, secrets bundles, S3 ({})",
            standins::ADDRESS,
            plan.names.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    );
    let sdir = standins::dir_of(boot.root());
    let ca = std::fs::read(sdir.join("ca.crt")).map_err(io("reading", &sdir))?;

    let standin = standin::load()?;
    let standin_files = standin::files(&standin);
    let mut delivered = Vec::new();
    for h in boot.state.hosts.clone() {
        let dir = boot.host_dir(&h.name);
        let merged = dir.join("merged");
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(d)).map_err(io("creating", &dir))?;
        }
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                boot.state.base.display(),
                dir.join("upper").display(),
                dir.join("work").display()
            ))
            .arg(&merged))?;
        for (path, mode, content) in &standin_files {
            write_file(
                &merged.join(path.trim_start_matches('/')),
                content.as_bytes(),
                *mode,
            )?;
        }
        let host_out = boot.out().join("hosts").join(&h.name);
        // The data centre's CA, as the host would trust it.
        write_file(
            &merged.join(standins::CA_IN_HOST.trim_start_matches('/')),
            &ca,
            0o644,
        )?;
        let cmdline = kernel_cmdline(&boot.out(), &h.name)?;
        write_file(&dir.join("cmdline"), cmdline.as_bytes(), 0o644)?;
        with_chroot_mounts(&merged, || {
            chroot(&merged, &["update-ca-certificates"])?;
            chroot(
                &merged,
                &["/usr/lib/pgimg-standin/install-package", standin::IMAGE],
            )?;
            match h.install {
                InstallPath::Kickstart => {
                    play_kickstart(&merged, &host_out, &h.netns, &dir.join("cmdline"))
                }
                InstallPath::CloudInit => seed_cloud_init(&merged, &host_out, &h.name),
            }
        })
        .map_err(|e| {
            fail(format!(
                "host `{}` ({:?} install path): {e}",
                h.name, h.install
            ))
        })?;
        if boot.out().join("secrets").join(&h.name).is_dir() {
            delivered.push(format!(
                "{} ({})",
                h.name,
                match h.install {
                    InstallPath::Kickstart => "kickstart %post: fetch-secrets https",
                    InstallPath::CloudInit => "pgimg-secrets.service: fetch-secrets ssm",
                }
            ));
        }
        phase(
            t0,
            &format!(
                "{}: installed by its {} ",
                h.name,
                match h.install {
                    InstallPath::Kickstart => "kickstart (%packages, firewall, %post)",
                    InstallPath::CloudInit => "user-data seed (cloud-init runs at first boot)",
                }
            ),
        );
    }
    boot.state.secrets_delivery = if delivered.is_empty() {
        "none needed".into()
    } else {
        format!(
            "by the rendered mechanism, from the stand-ins at {}: {}",
            standins::ADDRESS,
            delivered.join(", ")
        )
    };
    eprintln!("secrets: {}", boot.state.secrets_delivery);
    boot.save()?;

    let names: Vec<String> = boot.state.hosts.iter().map(|h| h.name.clone()).collect();
    for h in &names {
        boot.start_host(h)?;
    }
    phase(t0, "containers started (systemd is PID 1 in each)");
    let mut bad = Vec::new();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    for h in &names {
        let s = boot.boot_outcome(h, deadline)?;
        phase(t0, &format!("{h}: systemctl is-system-running: {s}"));
        let report = boot.failed_units_report_except(h, MONITORS);
        if s != "running" && !(s == "degraded" && report.is_empty()) {
            bad.push(format!("{h}: {s}\n{report}"));
        }
    }
    // A unit with Restart= that cannot start shows as auto-restart, not
    // failed: look a few times over its RestartSec.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_secs(3));
        for h in &names {
            let report = boot.failed_units_report_except(h, MONITORS);
            if !report.is_empty() && !bad.iter().any(|b| b.starts_with(&format!("{h}:"))) {
                bad.push(format!("{h}: units fail\n{report}"));
            }
        }
    }
    if !bad.is_empty() {
        return Err(fail(format!("hosts not running:\n{}", bad.join("\n"))));
    }
    Ok(())
}

fn run_is_tmpfs() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines().any(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                f.get(1) == Some(&"/run") && f.get(2) == Some(&"tmpfs")
            })
        })
        .unwrap_or(false)
}

/// What anaconda mounts into the installed system before `%post`: /proc, /sys, /dev.
fn with_chroot_mounts(merged: &Path, f: impl FnOnce() -> Result<(), Error>) -> Result<(), Error> {
    let mut mounted = Vec::new();
    let mut result = (|| {
        for (src, dst, kind) in [("proc", "proc", "proc"), ("sysfs", "sys", "sysfs")] {
            let d = merged.join(dst);
            run(Command::new("mount").args(["-t", kind, src]).arg(&d))?;
            mounted.push(d);
        }
        let d = merged.join("dev");
        run(Command::new("mount").args(["--rbind", "/dev"]).arg(&d))?;
        run(Command::new("mount").args(["--make-rslave"]).arg(&d))?;
        mounted.push(d);
        Ok(())
    })();
    if result.is_ok() {
        result = f();
    }
    for d in mounted.iter().rev() {
        if run(Command::new("umount").arg("-R").arg(d)).is_err() {
            let _ = run(Command::new("umount").args(["-R", "-l"]).arg(d));
        }
    }
    result
}

fn chroot(merged: &Path, args: &[&str]) -> Result<Output, Error> {
    run(Command::new("chroot")
        .arg(merged)
        .args(["/usr/bin/env", "-i"])
        .arg(format!("PATH={CONTAINER_PATH}"))
        .args(["LANG=C.UTF-8", "HOME=/root"])
        .args(args))
}

/// The parts of an anaconda installation that touch the installed system, in
/// anaconda's order: the hostname, `%packages` (through the stand-in), the
/// `firewall` command (anaconda calls `firewall-offline-cmd` with the
/// command's options), `services`, then every `%post` in the installed
/// system (chroot) with its interpreter, its log where it says.
fn play_kickstart(
    merged: &Path,
    host_out: &Path,
    netns: &str,
    cmdline: &Path,
) -> Result<(), Error> {
    let ks_path = host_out.join("kickstart.ks");
    let text = std::fs::read_to_string(&ks_path).map_err(io("reading", &ks_path))?;
    let ks =
        install::parse_kickstart(&text).map_err(|e| fail(format!("{}: {e}", ks_path.display())))?;
    if let Some(h) = &ks.hostname {
        write_file(
            &merged.join("etc/hostname"),
            format!("{h}\n").as_bytes(),
            0o644,
        )?;
    }
    let pkgs: Vec<&str> = ks
        .packages
        .iter()
        .map(String::as_str)
        .filter(|p| *p != standin::IMAGE)
        .collect();
    let mut args = vec!["/usr/lib/pgimg-standin/install-package"];
    args.extend(&pkgs);
    chroot(merged, &args)?;
    if !ks.firewall.is_empty() {
        let mut args = vec!["firewall-offline-cmd"];
        args.extend(ks.firewall.iter().map(String::as_str));
        chroot(merged, &args)?;
    }
    if !ks.services_enabled.is_empty() {
        let mut args = vec!["systemctl", "enable"];
        args.extend(ks.services_enabled.iter().map(String::as_str));
        chroot(merged, &args)?;
    }
    for (i, post) in ks.posts.iter().enumerate() {
        if post.nochroot {
            return Err(fail(
                "a `%post --nochroot` section runs in the installer: the boot lab does not play it",
            ));
        }
        let script = format!("/tmp/pgimg-ks-post-{i}");
        write_file(
            &merged.join(script.trim_start_matches('/')),
            post.body.as_bytes(),
            0o700,
        )?;
        // The installer runs %post on the host's own network (its static
        // address is on the kernel line), with the installer's kernel
        // command line in /proc/cmdline.
        let proc_cmdline = merged.join("proc/cmdline");
        run(Command::new("mount")
            .arg("--bind")
            .arg(cmdline)
            .arg(&proc_cmdline))?;
        let out = Command::new("ip")
            .args(["netns", "exec", netns, "chroot"])
            .arg(merged)
            .args(["/usr/bin/env", "-i"])
            .arg(format!("PATH={CONTAINER_PATH}"))
            .args(["LANG=C.UTF-8", "HOME=/root", &post.interpreter, &script])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("running %post: {e}")));
        let _ = run(Command::new("umount").arg(&proc_cmdline));
        let out = out?;
        let _ = std::fs::remove_file(merged.join(script.trim_start_matches('/')));
        if let Some(log) = &post.log {
            let mut bytes = out.stdout.clone();
            bytes.extend(&out.stderr);
            write_file(&merged.join(log.trim_start_matches('/')), &bytes, 0o600)?;
        }
        if !out.status.success() && post.erroronfail {
            return Err(fail(format!(
                "%post section {} failed ({}), which stops the installation (--erroronfail): {}",
                i + 1,
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )));
        }
    }
    Ok(())
}

/// A NoCloud seed with the host's user-data byte for byte, and the
/// configuration that makes the real cloud-init act as on EL9.
fn seed_cloud_init(merged: &Path, host_out: &Path, host: &str) -> Result<(), Error> {
    let ud = host_out.join("user-data");
    let bytes = std::fs::read(&ud).map_err(io("reading", &ud))?;
    let seed = merged.join("var/lib/cloud/seed/nocloud");
    write_file(&seed.join("user-data"), &bytes, 0o600)?;
    write_file(
        &seed.join("meta-data"),
        install::meta_data(host).as_bytes(),
        0o600,
    )?;
    write_file(
        &merged.join("etc/cloud/cloud.cfg.d/90-pgimg-boot-lab.cfg"),
        install::CLOUD_CFG.as_bytes(),
        0o644,
    )?;
    for (unit, text) in install::CLOUD_INIT_EL9_UNITS {
        write_file(
            &merged.join("etc/systemd/system").join(unit),
            text.as_bytes(),
            0o644,
        )?;
    }
    let disabled = merged.join("etc/cloud/cloud-init.disabled");
    if disabled.exists() {
        std::fs::remove_file(&disabled).map_err(io("removing", &disabled))?;
    }
    Ok(())
}

/// The installer's kernel command line as the lab boots a kickstart host:
/// its install entry's own arguments are the installer's business; what
/// `%post` reads is `pgimg.secrets_sha256=`, which the operator adds from
/// `secrets/<host>.tar.gz.sha256` (never in a reviewable file).
fn kernel_cmdline(out: &Path, host: &str) -> Result<String, Error> {
    let p = out.join("secrets").join(format!("{host}.tar.gz.sha256"));
    let mut line = format!("BOOT_IMAGE=vmlinuz inst.ks=hosts/{host}/kickstart.ks");
    if p.is_file() {
        let text = std::fs::read_to_string(&p).map_err(io("reading", &p))?;
        let sum = text.split_whitespace().next().unwrap_or_default();
        line.push_str(&format!(" pgimg.secrets_sha256={sum}"));
    }
    line.push('\n');
    Ok(line)
}

/// The stand-ins' namespace on the bridge, their certificates, and their server.
fn start_standins(boot: &mut Boot, plan: &standins::Plan) -> Result<(), Error> {
    let (ns, veth) = (
        boot.state.standins_netns.clone(),
        boot.state.standins_veth.clone(),
    );
    ip(&["netns", "add", &ns])?;
    ip(&[
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ])?;
    ip(&["link", "set", &veth, "master", &boot.state.bridge, "up"])?;
    mapping::check_address(standins::ADDRESS)?;
    let cidr = format!("{}/{}", standins::ADDRESS, mapping::PREFIX_LEN);
    ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
    ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    let dir = standins::dir_of(boot.root());
    standins::certificates(plan, &dir)?;
    write_file(
        &dir.join("boot-standins.py"),
        standins::SERVER.as_bytes(),
        0o755,
    )?;
    let config = standins::config(plan, &dir, &boot.out().join("secrets"));
    write_file(
        &dir.join("config.json"),
        serde_json::to_string_pretty(&config)
            .unwrap_or_default()
            .as_bytes(),
        0o600,
    )?;
    let pid = standins::start(&dir, &ns, &Path::new(DEPS).join("bin/python3"))?;
    boot.state.standins_pid = Some(pid);
    boot.save()
}

/// The cgroups a container's systemd-nspawn runs in: under `pgimg-boot/` of
/// the hierarchies systemd manages (cgroup v2's root, or v1's `name=systemd`
/// and the hybrid `unified`).
fn cgroup_dirs(machine: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let roots: Vec<PathBuf> = if root.join("cgroup.procs").exists() {
        vec![root.to_path_buf()]
    } else {
        ["systemd", "unified"]
            .iter()
            .map(|h| root.join(h))
            .filter(|p| p.join("cgroup.procs").exists())
            .collect()
    };
    roots
        .into_iter()
        .map(|r| r.join("pgimg-boot").join(machine))
        .collect()
}

/// Removes a stopped container's cgroups, deepest first (empty ones only).
fn remove_cgroups(machine: &str) {
    for d in cgroup_dirs(machine) {
        if !d.is_dir() {
            continue;
        }
        for e in walkdir::WalkDir::new(&d)
            .contents_first(true)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_dir())
        {
            let _ = std::fs::remove_dir(e.path());
        }
        if let Some(parent) = d.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Unmounts the tmpfs `up` put on `/run/systemd/nspawn` once no
/// systemd-nspawn runs any more (another lab on this machine may still
/// use it).
fn release_nspawn_state() {
    let p = Path::new("/run/systemd/nspawn");
    if run_is_tmpfs() || !is_mounted(p) {
        return;
    }
    let busy = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|pid| cmdline(pid).starts_with("systemd-nspawn"))
            })
        })
        .unwrap_or(true);
    if !busy {
        let _ = run(Command::new("umount").arg(p));
    }
}
