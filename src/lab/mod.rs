//! `pgimg lab`: start a spec's cluster for real on one machine, from the
//! very artifacts a build renders.
//!
//! A lab build is `crate::build` with a lab `Mapping` (every host on its own
//! loopback address, every absolute path under `<lab root>/<host>`); nothing
//! else differs from a real build. The lab then plays the part of the
//! machines: it writes each host's files into its root, puts the binaries
//! where the rendered files expect them, and starts what systemd would start
//! (the rendered units' `ExecStart`, `Environment` and `EnvironmentFile`), as
//! one unprivileged user. Unlike the rest of the crate this module does I/O
//! and runs processes: it sits outside the pure pipeline.
//!
//! Bookkeeping lives in `<lab root>/.lab/`: `state.json` (the topology as
//! mapped), `procs` (every process started, with its start time) and `log/`.

pub mod mapping;

mod http;
mod procs;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::model::{Cluster, Fleet};
use crate::render::context::{paths, stanza};
use crate::spec::v1::{PatroniInstall, Role};

pub use procs::Proc;

const ETCD_TIMEOUT: Duration = Duration::from_secs(60);
const SITE_TIMEOUT: Duration = Duration::from_secs(240);
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What `pgimg lab` was asked to do it on.
#[derive(Debug, Clone)]
pub struct Options {
    pub spec: PathBuf,
    pub cluster: Option<String>,
    /// Default `/tmp/pgimg-lab/<cluster>`.
    pub root: Option<PathBuf>,
    /// The second octet of the lab's loopback addresses (`127.<net>.<site>.<host>`).
    pub net: u8,
    pub roles: Option<PathBuf>,
}

/// The secret values of a lab: fixed, per kind, keyed by the spec's references.
pub fn lab_secrets(fleet: &Fleet) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in &fleet.clusters {
        let s = &c.secrets;
        let kinds = [
            (&s.superuser_password, "lab-superuser-password"),
            (&s.replication_password, "lab-replication-password"),
            (&s.rewind_password, "lab-rewind-password"),
            (&s.restapi_password, "lab-restapi-password"),
            (&s.backup_cipher_pass, "lab-backup-cipher-pass"),
        ];
        for (r, v) in kinds {
            if let Some(r) = r {
                out.entry(r.label()).or_insert_with(|| v.to_string());
            }
        }
        for s in &c.sites {
            for h in &s.hosts {
                for r in &h.config.pgbackrest.repos {
                    for (k, v) in [(&r.key, "lab-s3-key"), (&r.key_secret, "lab-s3-key-secret")] {
                        if let Some(k) = k {
                            out.entry(k.label()).or_insert_with(|| v.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// The topology of a lab as mapped: what `status` and `down` need without the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub cluster: String,
    pub root: PathBuf,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub pg_bindir: PathBuf,
    pub tools_dir: Vec<PathBuf>,
    pub superuser_password: String,
    pub sites: Vec<SiteState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteState {
    pub name: String,
    pub scope: String,
    pub standby_of: Option<String>,
    pub slot_name: String,
    pub stanza: String,
    pub hosts: Vec<HostState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub member: String,
    pub address: String,
    pub localhost: String,
    pub etcd_client_port: Option<u16>,
    pub etcd_peer_port: Option<u16>,
    pub pg: Option<PgState>,
    pub haproxy: Option<HaproxyState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgState {
    pub port: u16,
    pub restapi_port: u16,
    /// Mapped.
    pub data_dir: PathBuf,
    pub superuser: String,
    /// Mapped.
    pub patroni_config: PathBuf,
    pub pgbackrest_config: PathBuf,
    pub socket_dir: PathBuf,
    /// S3 repositories (number, local stand-in directory).
    pub s3_repos: Vec<(u32, PathBuf)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HaproxyState {
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
}

/// One member as Patroni's `GET /cluster` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub host: String,
    pub role: String,
    pub state: String,
    pub timeline: Option<u64>,
    pub lag: Option<u64>,
}

impl SiteState {
    pub fn pg_hosts(&self) -> impl Iterator<Item = &HostState> {
        self.hosts.iter().filter(|h| h.pg.is_some())
    }
    pub fn haproxy(&self) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.haproxy.is_some())
    }
    pub fn is_dr(&self) -> bool {
        self.standby_of.is_some()
    }
}

/// A lab on disk.
pub struct Lab {
    pub state: State,
}

fn fail(msg: impl Into<String>) -> Error {
    Error::Input(msg.into())
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(action, path, e)
}

fn elapsed(t: Instant) -> String {
    format!("{:.1} s", t.elapsed().as_secs_f64())
}

/// The default lab root of a cluster.
pub fn default_root(cluster: &str) -> PathBuf {
    PathBuf::from("/tmp/pgimg-lab").join(cluster)
}

fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX)
}

/// (name, uid, gid) of a passwd entry, by name or uid.
fn getent(key: &str) -> Option<(String, u32, u32)> {
    let out = Command::new("getent").args(["passwd", key]).output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .to_string();
    let f: Vec<&str> = line.split(':').collect();
    Some((
        f.first()?.to_string(),
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
    ))
}

/// The OS user the daemons run as. pg_hba's `local all all peer` and
/// pgBackRest's `pg1-user` make it the spec's superuser's name: as root the
/// lab runs everything as that user (creating `postgres` if missing); as
/// anyone else, it must be that user.
fn lab_user(superuser: &str) -> Result<(String, u32, u32), Error> {
    let euid = effective_uid();
    if euid == 0 {
        if getent(superuser).is_none() && superuser == "postgres" {
            let st = Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--create-home",
                    "--home-dir",
                    "/var/lib/postgresql",
                    "--shell",
                    "/bin/bash",
                    "postgres",
                ])
                .status();
            if !matches!(st, Ok(s) if s.success()) {
                return Err(fail("cannot create the system user `postgres` (useradd)"));
            }
        }
        let u = getent(superuser).ok_or_else(|| {
            fail(format!(
                "run as root, the lab runs its daemons as the OS user named like the spec's superuser, `{superuser}`, which does not exist: create it (useradd --system {superuser})"
            ))
        })?;
        if u.1 == 0 {
            return Err(fail(format!(
                "the spec's superuser `{superuser}` is root here: PostgreSQL refuses to run as root"
            )));
        }
        return Ok(u);
    }
    let me = getent(&euid.to_string())
        .ok_or_else(|| fail(format!("cannot find the passwd entry of uid {euid}")))?;
    if me.0 != superuser {
        return Err(fail(format!(
            "the lab runs PostgreSQL as the current user `{}`, but the spec's superuser is `{superuser}`: pg_hba's `local all all peer` and pgBackRest's pg1-user={superuser} need the two names to match; run as root (the lab then runs its daemons as `{superuser}`) or as the user `{superuser}`",
            me.0
        )));
    }
    Ok(me)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

fn tool(name: &str, package: &str) -> Result<PathBuf, Error> {
    which(name).ok_or_else(|| {
        fail(format!(
            "`{name}` not found on PATH: install {package} (or run scripts/install-test-deps and `. /opt/pgimg-deps/env`)"
        ))
    })
}

/// The PostgreSQL bin directory of `major`: `$PGIMG_PG_BINDIR`, else the
/// directory of `pg_ctl` on PATH, else the distributions' usual places.
fn pg_bindir(major: u32) -> Result<PathBuf, Error> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("PGIMG_PG_BINDIR") {
        candidates.push(PathBuf::from(d));
    }
    if let Some(p) = which("pg_ctl").and_then(|p| p.parent().map(Path::to_path_buf)) {
        candidates.push(p);
    }
    candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    candidates.push(PathBuf::from(format!("/usr/pgsql-{major}/bin")));
    for d in candidates {
        if !d.join("postgres").is_file() {
            continue;
        }
        let v = Command::new(d.join("postgres")).arg("--version").output();
        let text = v
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if text.contains(&format!("(PostgreSQL) {major}.")) {
            return Ok(d);
        }
    }
    Err(fail(format!(
        "PostgreSQL {major} not found: install it (PGDG: postgresql-{major}; Debian: postgresql-{major}) and set PGIMG_PG_BINDIR to its bin directory (scripts/install-test-deps does both)"
    )))
}

/// glibc's spelling of a locale name (`en_US.UTF-8` → `en_us.utf8`).
fn normalize_locale(l: &str) -> String {
    l.to_ascii_lowercase().replace("utf-8", "utf8")
}

fn check_locale(locale: &str) -> Result<(), Error> {
    let n = normalize_locale(locale);
    if matches!(n.as_str(), "c" | "posix" | "c.utf8") {
        return Ok(());
    }
    let out = Command::new("locale").arg("-a").output();
    let have = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if have.lines().any(|l| normalize_locale(l.trim()) == n) {
        return Ok(());
    }
    Err(fail(format!(
        "initdb needs the spec's locale `{locale}`, which this machine lacks: generate it (Debian: package locales, `{locale} UTF-8` in /etc/locale.gen, locale-gen; scripts/install-test-deps does it for en_US.UTF-8)"
    )))
}

fn pick_cluster<'a>(fleet: &'a Fleet, name: Option<&str>) -> Result<&'a Cluster, Error> {
    match name {
        Some(n) => fleet.clusters.iter().find(|c| c.name == n).ok_or_else(|| {
            fail(format!(
                "no cluster `{n}` in the spec; it has: {}",
                fleet
                    .clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
        None => match fleet.clusters.as_slice() {
            [c] => Ok(c),
            cs => Err(fail(format!(
                "the spec has {} clusters; name one: {}",
                cs.len(),
                cs.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

fn absolute(p: &Path) -> Result<PathBuf, Error> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .map_err(io("reading the current directory", p))?
            .join(p))
    }
}

/// The lab root a command works on: `--root`, else the default of the spec's cluster.
pub fn root_of(opts: &Options) -> Result<PathBuf, Error> {
    if let Some(r) = &opts.root {
        return absolute(r);
    }
    if let Some(c) = &opts.cluster {
        return Ok(default_root(c));
    }
    let source = crate::load::spec(&opts.spec)?;
    let v = validate(source)?;
    Ok(default_root(&pick_cluster(&v.fleet, None)?.name))
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

/// Parsed `KEY=value` lines of an environment file.
fn env_file(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// What systemd would run for a rendered unit: `ExecStart` and its environment.
struct UnitExec {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

fn unit_exec(unit: &Path) -> Result<UnitExec, Error> {
    let text = std::fs::read_to_string(unit).map_err(io("reading", unit))?;
    let mut argv = Vec::new();
    let mut env = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("ExecStart=") {
            argv = v.split_whitespace().map(str::to_string).collect();
        } else if let Some(v) = line.strip_prefix("Environment=") {
            if let Some((k, v)) = v.split_once('=') {
                env.push((k.to_string(), v.to_string()));
            }
        } else if let Some(v) = line.strip_prefix("EnvironmentFile=") {
            let (optional, file) = match v.strip_prefix('-') {
                Some(f) => (true, f),
                None => (false, v),
            };
            let file = Path::new(file);
            if optional && !file.exists() {
                continue;
            }
            env.extend(env_file(file)?);
        }
    }
    if argv.is_empty() {
        return Err(fail(format!("{}: no ExecStart", unit.display())));
    }
    Ok(UnitExec { argv, env })
}

impl Lab {
    pub fn root(&self) -> &Path {
        &self.state.root
    }

    /// `<lab root>/<host>`.
    pub fn host_root(&self, host: &str) -> PathBuf {
        self.state.root.join(host)
    }

    /// Where an absolute path of `host` is in the lab.
    pub fn path(&self, host: &str, abs: &str) -> PathBuf {
        PathBuf::from(format!("{}{abs}", self.host_root(host).display()))
    }

    fn dot(&self) -> PathBuf {
        self.state.root.join(".lab")
    }

    fn procs_file(&self) -> PathBuf {
        self.dot().join("procs")
    }

    pub fn log_file(&self, host: &str, service: &str) -> PathBuf {
        self.dot().join("log").join(format!("{host}.{service}.log"))
    }

    pub fn site(&self, name: &str) -> Option<&SiteState> {
        self.state.sites.iter().find(|s| s.name == name)
    }

    pub fn host(&self, name: &str) -> Option<&HostState> {
        self.state
            .sites
            .iter()
            .flat_map(|s| s.hosts.iter())
            .find(|h| h.name == name)
    }

    pub fn records(&self) -> Vec<Proc> {
        procs::read_records(&self.procs_file())
    }

    /// Renders the spec with the lab mapping and lays every host's files,
    /// directories, secrets and binaries out under the lab root. Starts nothing.
    pub fn prepare(opts: &Options) -> Result<Lab, Error> {
        let t = Instant::now();
        let source = crate::load::spec(&opts.spec)?;
        let v = validate(source)?;
        let cluster = pick_cluster(&v.fleet, opts.cluster.as_deref())?;
        let root = match &opts.root {
            Some(r) => absolute(r)?,
            None => default_root(&cluster.name),
        };
        clear_old_root(&root)?;
        let pg_hosts: Vec<_> = cluster
            .sites
            .iter()
            .flat_map(|s| s.with_role(Role::Pg))
            .collect();
        let first_pg = pg_hosts
            .first()
            .ok_or_else(|| fail(format!("cluster `{}` has no pg host", cluster.name)))?;
        let pg = &first_pg.config.postgresql;
        let (user, uid, gid) = lab_user(&pg.superuser)?;
        check_locale(&pg.locale)?;
        let bindir = pg_bindir(pg.major)?;
        let etcd = tool("etcd", "etcd 3.5 (Debian: etcd-server)")?;
        let etcdctl = tool("etcdctl", "etcd 3.5 (Debian: etcd-client)")?;
        let patroni = tool(
            "patroni",
            "Patroni 4 (pip: patroni[psycopg3,etcd3]; Debian: patroni)",
        )?;
        let patronictl = tool(
            "patronictl",
            "Patroni 4 (pip: patroni[psycopg3,etcd3]; Debian: patroni)",
        )?;
        let pgbackrest = tool(
            "pgbackrest",
            "pgBackRest >= 2.52, the first to support PostgreSQL 17 (Debian 13: pgbackrest)",
        )?;
        let haproxy = tool("haproxy", "HAProxy (Debian: haproxy)")?;

        let root_s = root.to_string_lossy().into_owned();
        let m = mapping::lab_mapping(&v.fleet, &root_s, opts.net)?;
        let secrets = lab_secrets(&v.fleet);
        let inputs = crate::BuildInputs {
            roles: match &opts.roles {
                Some(d) => crate::load::roles(d)?,
                None => crate::load::RoleTree::embedded(),
            },
            secrets: crate::load::SecretValues {
                values: secrets.clone(),
            },
            mapping: m.clone(),
        };
        let tree = crate::build(&v, &inputs)?;
        if let Some(n) = tree
            .notes
            .iter()
            .find(|n| n.contains("secrets not supplied"))
        {
            return Err(fail(format!(
                "the lab supplies a value for every secret reference of the spec, but: {n}"
            )));
        }

        // State first: the mapped topology.
        let mut sites = Vec::new();
        for s in &cluster.sites {
            let mut hosts = Vec::new();
            for h in &s.hosts {
                let c = &h.config;
                let mp = |p: &str| PathBuf::from(m.path(&h.name, p));
                hosts.push(HostState {
                    name: h.name.clone(),
                    member: h.member_name.clone(),
                    address: m.addr(&h.address),
                    localhost: m.localhost(&h.name),
                    etcd_client_port: h.has(Role::Etcd).then_some(c.etcd.client_port),
                    etcd_peer_port: h.has(Role::Etcd).then_some(c.etcd.peer_port),
                    pg: h.has(Role::Pg).then(|| PgState {
                        port: c.postgresql.port,
                        restapi_port: c.patroni.restapi_port,
                        data_dir: mp(&c.postgresql.data_dir),
                        superuser: c.postgresql.superuser.clone(),
                        patroni_config: mp(paths::PATRONI_CONFIG),
                        pgbackrest_config: mp(paths::PGBACKREST_CONFIG),
                        socket_dir: mp(paths::SOCKET_DIR),
                        s3_repos: Vec::new(),
                    }),
                    haproxy: h.has(Role::Haproxy).then_some(HaproxyState {
                        write_port: c.haproxy.write_port,
                        read_port: c.haproxy.read_port,
                        stats_port: c.haproxy.stats_port,
                    }),
                });
            }
            sites.push(SiteState {
                name: s.name.clone(),
                scope: s.scope.clone(),
                standby_of: s.standby_of.clone(),
                slot_name: s.slot_name.clone(),
                stanza: stanza(s),
                hosts,
            });
        }
        // Sources before the sites that follow them.
        sites.sort_by_key(|s| s.standby_of.is_some());
        let superuser_password = cluster
            .secrets
            .superuser_password
            .as_ref()
            .and_then(|r| secrets.get(&r.label()).cloned())
            .unwrap_or_default();
        let mut tools_dir: Vec<PathBuf> = Vec::new();
        for t in [&patroni, &etcd, &pgbackrest, &haproxy] {
            if let Some(d) = t.parent()
                && !tools_dir.iter().any(|x| x == d)
            {
                tools_dir.push(d.to_path_buf());
            }
        }
        let mut lab = Lab {
            state: State {
                cluster: cluster.name.clone(),
                root: root.clone(),
                user,
                uid,
                gid,
                pg_bindir: bindir.clone(),
                tools_dir,
                superuser_password,
                sites,
            },
        };
        lab.check_ports_free()?;

        std::fs::create_dir_all(lab.dot().join("log")).map_err(io("creating", &root))?;
        let cluster_hosts: BTreeSet<&str> = cluster
            .sites
            .iter()
            .flat_map(|s| s.hosts.iter().map(|h| h.name.as_str()))
            .collect();
        let mut dirs: Vec<(PathBuf, u32)> = Vec::new();
        for (path, a) in &tree.files {
            let Some(rest) = path.strip_prefix("hosts/") else {
                continue;
            };
            let Some((host, file)) = rest.split_once('/') else {
                continue;
            };
            if !cluster_hosts.contains(host) {
                continue;
            }
            if file != "overlay.list" {
                continue;
            }
            // overlay.list is the build's own word on every entry's mode.
            for line in String::from_utf8_lossy(&a.bytes).lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                let (Some(kind_mode), Some(p)) = (f.first(), f.get(3)) else {
                    continue;
                };
                let mode = u32::from_str_radix(&kind_mode[1..], 8)
                    .map_err(|_| fail(format!("hosts/{host}/overlay.list: bad line `{line}`")))?;
                let target = lab.path(host, p.trim_end_matches('/'));
                if kind_mode.starts_with('d') {
                    std::fs::create_dir_all(&target).map_err(io("creating", &target))?;
                    dirs.push((target, mode));
                } else {
                    let rel = format!("hosts/{host}/rootfs{p}");
                    let art = tree
                        .files
                        .get(&rel)
                        .ok_or_else(|| fail(format!("{rel} missing from the build")))?;
                    write_file(&target, &art.bytes, mode)?;
                }
            }
        }
        for (path, a) in &tree.files {
            if let Some(rest) = path.strip_prefix("secrets/") {
                if let Some((host, abs)) = rest.split_once('/')
                    && cluster_hosts.contains(host)
                {
                    write_file(&lab.path(host, &format!("/{abs}")), &a.bytes, 0o600)?;
                }
            } else if let Some(rest) = path.strip_prefix(&format!("clusters/{}/", cluster.name)) {
                write_file(&root.join("cluster").join(rest), &a.bytes, a.mode)?;
            }
        }

        // The binaries, where the rendered files expect them.
        let bins: Vec<(String, String, PathBuf)> = cluster
            .sites
            .iter()
            .flat_map(|s| s.hosts.iter())
            .flat_map(|h| {
                let c = &h.config;
                let mut v: Vec<(String, PathBuf)> = Vec::new();
                if h.has(Role::Etcd) || h.has(Role::Pg) {
                    v.push(("/usr/bin/etcdctl".into(), etcdctl.clone()));
                }
                if h.has(Role::Etcd) {
                    v.push(("/usr/bin/etcd".into(), etcd.clone()));
                }
                if h.has(Role::Pg) {
                    v.push((c.postgresql.bin_dir.clone(), bindir.clone()));
                    v.push(("/usr/bin/pgbackrest".into(), pgbackrest.clone()));
                    let (p, ctl) = match c.patroni.install {
                        PatroniInstall::Pip => (
                            format!("{}/bin/patroni", paths::PATRONI_VENV),
                            format!("{}/bin/patronictl", paths::PATRONI_VENV),
                        ),
                        PatroniInstall::Rpm => {
                            ("/usr/bin/patroni".into(), "/usr/bin/patronictl".into())
                        }
                    };
                    v.push((p, patroni.clone()));
                    v.push((ctl, patronictl.clone()));
                }
                if h.has(Role::Haproxy) {
                    v.push(("/usr/sbin/haproxy".into(), haproxy.clone()));
                }
                v.into_iter()
                    .map(|(a, b)| (h.name.clone(), a, b))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (host, abs, target) in bins {
            let link = lab.path(&host, &abs);
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
            }
            std::os::unix::fs::symlink(&target, &link).map_err(io("linking", &link))?;
        }

        lab.share_posix_repos()?;
        // Modes last, deepest first, so that a 0700 parent never blocks its children.
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
        for (d, mode) in &dirs {
            if !d.is_symlink() {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(*mode))
                    .map_err(io("setting the mode of", d))?;
            }
        }
        lab.chown_all()?;
        let state = serde_json::to_string_pretty(&lab.state).map_err(|e| fail(e.to_string()))?;
        write_file(&lab.dot().join("state.json"), state.as_bytes(), 0o644)?;
        println!(
            "lab {}: rendered {} hosts into {} as user {} in {}",
            lab.state.cluster,
            cluster_hosts.len(),
            root.display(),
            lab.state.user,
            elapsed(t)
        );
        Ok(lab)
    }

    /// Every posix repository is shared storage (an NFS mount on real
    /// hosts): each host's repository path becomes a link to one directory
    /// per repository path, so that every member archives into, and restores
    /// from, the same repository. Also notes the S3 repositories.
    fn share_posix_repos(&mut self) -> Result<(), Error> {
        let root = self.state.root.clone();
        let hosts: Vec<(String, PathBuf)> = self
            .state
            .sites
            .iter()
            .flat_map(|s| s.pg_hosts())
            .map(|h| {
                (
                    h.name.clone(),
                    h.pg.as_ref().map(|p| p.pgbackrest_config.clone()),
                )
            })
            .filter_map(|(n, c)| c.map(|c| (n, c)))
            .collect();
        for (host, conf) in hosts {
            let text = std::fs::read_to_string(&conf).map_err(io("reading", &conf))?;
            let kv: BTreeMap<&str, &str> = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            let mut s3 = Vec::new();
            for n in 1..=256u32 {
                match kv.get(format!("repo{n}-type").as_str()) {
                    Some(&"s3") => {
                        let bucket = kv.get(format!("repo{n}-s3-bucket").as_str()).unwrap_or(&"");
                        let path = kv.get(format!("repo{n}-path").as_str()).unwrap_or(&"");
                        let dir =
                            PathBuf::from(format!("{}/shared/s3/{bucket}{path}", root.display()));
                        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
                        s3.push((n, dir));
                    }
                    Some(&"posix") => {
                        let Some(p) = kv.get(format!("repo{n}-path").as_str()) else {
                            continue;
                        };
                        let prefix = self.host_root(&host).to_string_lossy().into_owned();
                        let Some(abs) = p.strip_prefix(&prefix) else {
                            continue;
                        };
                        let shared = PathBuf::from(format!("{}/shared{abs}", root.display()));
                        std::fs::create_dir_all(&shared).map_err(io("creating", &shared))?;
                        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750))
                            .map_err(io("setting the mode of", &shared))?;
                        let link = PathBuf::from(p);
                        if link.is_dir() && !link.is_symlink() {
                            std::fs::remove_dir(&link).map_err(io("replacing", &link))?;
                        }
                        if let Some(parent) = link.parent() {
                            std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
                        }
                        if !link.is_symlink() {
                            std::os::unix::fs::symlink(&shared, &link)
                                .map_err(io("linking", &link))?;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(pg) = self
                .state
                .sites
                .iter_mut()
                .flat_map(|s| s.hosts.iter_mut())
                .find(|h| h.name == host)
                .and_then(|h| h.pg.as_mut())
            {
                pg.s3_repos = s3;
            }
        }
        Ok(())
    }

    fn chown_all(&self) -> Result<(), Error> {
        if effective_uid() != 0 {
            return Ok(());
        }
        for e in walkdir::WalkDir::new(&self.state.root) {
            let e = e.map_err(|e| fail(format!("walking the lab root: {e}")))?;
            std::os::unix::fs::lchown(e.path(), Some(self.state.uid), Some(self.state.gid))
                .map_err(io("changing the owner of", e.path()))?;
        }
        Ok(())
    }

    /// Every address and port the lab will bind must be free now.
    fn check_ports_free(&self) -> Result<(), Error> {
        let mut want: Vec<(String, u16)> = Vec::new();
        for h in self.state.sites.iter().flat_map(|s| s.hosts.iter()) {
            if let (Some(c), Some(p)) = (h.etcd_client_port, h.etcd_peer_port) {
                want.push((h.address.clone(), c));
                want.push((h.address.clone(), p));
                want.push((h.localhost.clone(), c));
            }
            if let Some(pg) = &h.pg {
                want.push((h.address.clone(), pg.port));
                want.push((h.address.clone(), pg.restapi_port));
            }
            if let Some(x) = &h.haproxy {
                for p in [x.write_port, x.read_port, x.stats_port] {
                    want.push((h.address.clone(), p));
                }
            }
        }
        for (a, p) in want {
            let ip: std::net::IpAddr = a.parse().map_err(|_| fail(format!("bad address {a}")))?;
            if !ip.is_loopback() {
                return Err(fail(format!("{a} is not a loopback address")));
            }
            if std::net::TcpListener::bind((ip, p)).is_err() {
                return Err(fail(format!(
                    "{a}:{p} is already in use: another lab (`pgimg lab status`) or program holds it; pick another --net"
                )));
            }
        }
        Ok(())
    }

    /// Opens the lab at `root`.
    pub fn open(root: &Path) -> Result<Lab, Error> {
        let file = root.join(".lab").join("state.json");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                fail(format!("no lab at {} (no .lab/state.json)", root.display()))
            } else {
                Error::io("reading", &file, e)
            }
        })?;
        let state: State =
            serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", file.display())))?;
        Ok(Lab { state })
    }

    /// A command that runs as the lab user, with the lab's tools on PATH.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let mut path: Vec<PathBuf> = vec![self.state.pg_bindir.clone()];
        path.extend(self.state.tools_dir.iter().cloned());
        path.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
        let path = std::env::join_paths(path).unwrap_or_default();
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", self.dot())
            .env("LANG", "C.UTF-8")
            .current_dir(&self.state.root)
            .stdin(Stdio::null());
        if effective_uid() != self.state.uid {
            cmd.uid(self.state.uid).gid(self.state.gid);
        }
        cmd
    }

    /// Starts a daemon as the lab user, its output in `.lab/log/`, and records it.
    pub fn spawn(
        &self,
        host: &str,
        service: &str,
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<Proc, Error> {
        let log_path = self.log_file(host, service);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io("opening", &log_path))?;
        let log2 = log.try_clone().map_err(io("opening", &log_path))?;
        let mut cmd = self.command(&argv[0]);
        cmd.args(&argv[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        if Path::new(&self.host_root(host)).is_dir() {
            cmd.current_dir(self.host_root(host));
        }
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("starting {service} of {host} ({}): {e}", argv[0])))?;
        let pid = child.id();
        let start = procs::start_time(pid).unwrap_or(0);
        let p = Proc {
            host: host.to_string(),
            service: service.to_string(),
            pid,
            start,
        };
        procs::append_record(&self.procs_file(), &p)
            .map_err(io("recording", &self.procs_file()))?;
        Ok(p)
    }

    fn start_etcd(&self, host: &str) -> Result<Proc, Error> {
        let u = unit_exec(&self.path(host, "/etc/systemd/system/etcd.service"))?;
        let mut env = vec![(
            "HOME".to_string(),
            self.host_root(host).display().to_string(),
        )];
        env.extend(u.env);
        self.spawn(host, "etcd", &u.argv, &env)
    }

    /// Starts the Patroni of a pg host the way its rendered unit does.
    pub fn start_patroni(&self, host: &str) -> Result<Proc, Error> {
        let u = unit_exec(&self.path(host, "/etc/systemd/system/patroni.service"))?;
        let mut env = vec![(
            "HOME".to_string(),
            self.path(host, paths::POSTGRES_HOME).display().to_string(),
        )];
        env.extend(u.env);
        // A lab never contacts S3 (nor the instance metadata service): in
        // pgBackRest's environment, which overrides its config file, each S3
        // repository becomes a local directory shared by the lab's hosts.
        if let Some(h) = self.host(host) {
            for (n, dir) in h.pg.iter().flat_map(|p| p.s3_repos.iter()) {
                env.push((format!("PGBACKREST_REPO{n}_TYPE"), "posix".to_string()));
                env.push((
                    format!("PGBACKREST_REPO{n}_PATH"),
                    dir.display().to_string(),
                ));
            }
        }
        self.spawn(host, "patroni", &u.argv, &env)
    }

    fn start_haproxy(&self, host: &str) -> Result<Proc, Error> {
        let argv = vec![
            self.path(host, "/usr/sbin/haproxy").display().to_string(),
            "-db".to_string(),
            "-f".to_string(),
            self.path(host, "/etc/haproxy/haproxy.cfg")
                .display()
                .to_string(),
        ];
        self.spawn(host, "haproxy", &argv, &[])
    }

    /// Starts every etcd, then site by site (sources first) every Patroni and
    /// HAProxy, waiting (bounded) for each step to be healthy.
    pub fn start(&self) -> Result<(), Error> {
        let t = Instant::now();
        self.start_etcd_all()?;
        for s in &self.state.sites {
            self.start_site(&s.name)?;
            self.wait_site(&s.name, SITE_TIMEOUT)?;
        }
        println!("lab {}: healthy after {}", self.state.cluster, elapsed(t));
        Ok(())
    }

    pub fn start_etcd_all(&self) -> Result<(), Error> {
        for h in self.state.sites.iter().flat_map(|s| s.hosts.iter()) {
            if h.etcd_client_port.is_some() {
                self.start_etcd(&h.name)?;
            }
        }
        for s in &self.state.sites {
            self.wait(
                &format!("etcd of site {}: every member healthy", s.name),
                ETCD_TIMEOUT,
                || self.etcd_health(s),
            )?;
        }
        Ok(())
    }

    /// Starts the Patroni members and the HAProxy of a site.
    pub fn start_site(&self, site: &str) -> Result<(), Error> {
        let s = self
            .site(site)
            .ok_or_else(|| fail(format!("no site {site}")))?;
        for h in s.pg_hosts() {
            self.start_patroni(&h.name)?;
        }
        if let Some(h) = s.haproxy() {
            self.start_haproxy(&h.name)?;
        }
        let s3: BTreeSet<(u32, &PathBuf)> = s
            .pg_hosts()
            .flat_map(|h| h.pg.iter().flat_map(|p| p.s3_repos.iter()))
            .map(|(n, d)| (*n, d))
            .collect();
        for (n, dir) in s3 {
            println!(
                "note: site {site}: repo{n} is S3, which a lab never contacts: Patroni's environment (PGBACKREST_REPO{n}_TYPE=posix, _PATH) makes it the local directory {}; the rendered files are unchanged, so pgBackRest run by hand without those variables cannot reach the bucket",
                dir.display()
            );
        }
        Ok(())
    }

    /// Waits (bounded) until a site has its leader, every other member
    /// streaming, and HAProxy routing to them.
    pub fn wait_site(&self, site: &str, timeout: Duration) -> Result<(), Error> {
        let s = self
            .site(site)
            .ok_or_else(|| fail(format!("no site {site}")))?;
        let leader = if s.is_dr() {
            "a standby leader"
        } else {
            "a leader"
        };
        let n = s.pg_hosts().count();
        self.wait(
            &format!(
                "site {}: {leader} and {} streaming replica(s)",
                s.name,
                n.saturating_sub(1)
            ),
            timeout,
            || self.site_health(s),
        )?;
        if s.haproxy().is_some() {
            self.wait(
                &format!("site {}: HAProxy routes writes and reads", s.name),
                Duration::from_secs(60),
                || self.haproxy_health(s),
            )?;
        }
        Ok(())
    }

    fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Result<T, String>,
    ) -> Result<T, Error> {
        let t = Instant::now();
        println!("  waiting for {what} (up to {} s)", timeout.as_secs());
        loop {
            match f() {
                Ok(v) => {
                    println!("  ok: {what} after {}", elapsed(t));
                    return Ok(v);
                }
                Err(e) if t.elapsed() >= timeout => {
                    return Err(fail(format!(
                        "timed out after {} s waiting for {what}: {e} (logs: {})",
                        timeout.as_secs(),
                        self.dot().join("log").display()
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    pub fn etcd_health(&self, s: &SiteState) -> Result<(), String> {
        for h in &s.hosts {
            if let Some(p) = h.etcd_client_port {
                let (code, body) = http::get(&h.address, p, "/health")?;
                if code != 200 || !body.contains("\"true\"") {
                    return Err(format!("{}: {code} {body}", h.name));
                }
            }
        }
        Ok(())
    }

    /// The members of a site, from the first Patroni that answers `GET /cluster`.
    pub fn members(&self, s: &SiteState) -> Result<Vec<Member>, String> {
        let mut last = String::from("no pg host");
        for h in s.pg_hosts() {
            let Some(pg) = &h.pg else { continue };
            match http::get(&h.address, pg.restapi_port, "/cluster") {
                Ok((200, body)) => {
                    let v: Value =
                        serde_json::from_str(&body).map_err(|e| format!("{}: {e}", h.name))?;
                    let members = v["members"].as_array().cloned().unwrap_or_default();
                    return Ok(members
                        .iter()
                        .map(|m| Member {
                            name: m["name"].as_str().unwrap_or("").to_string(),
                            host: m["host"].as_str().unwrap_or("").to_string(),
                            role: m["role"].as_str().unwrap_or("").to_string(),
                            state: m["state"].as_str().unwrap_or("").to_string(),
                            timeline: m["timeline"].as_u64(),
                            lag: m["lag"].as_u64(),
                        })
                        .collect());
                }
                Ok((code, body)) => last = format!("{}: {code} {body}", h.name),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The member that leads a site (leader, or standby leader of a DR site).
    pub fn leader(&self, s: &SiteState) -> Result<Member, String> {
        let ms = self.members(s)?;
        ms.into_iter()
            .find(|m| m.role == "leader" || m.role == "standby_leader")
            .ok_or_else(|| format!("site {}: no leader", s.name))
    }

    pub fn site_health(&self, s: &SiteState) -> Result<String, String> {
        let ms = self.members(s)?;
        let want_role = if s.is_dr() {
            "standby_leader"
        } else {
            "leader"
        };
        let leaders: Vec<&Member> = ms.iter().filter(|m| m.role == want_role).collect();
        let describe = || {
            ms.iter()
                .map(|m| format!("{} {} {}", m.name, m.role, m.state))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if leaders.len() != 1 || !matches!(leaders[0].state.as_str(), "running" | "streaming") {
            return Err(format!("no single running {want_role}: [{}]", describe()));
        }
        let n = s.pg_hosts().count();
        if ms.len() != n {
            return Err(format!("{} of {n} members: [{}]", ms.len(), describe()));
        }
        if let Some(m) = ms
            .iter()
            .find(|m| m.role != want_role && m.state != "streaming")
        {
            return Err(format!("{} is {}: [{}]", m.name, m.state, describe()));
        }
        Ok(describe())
    }

    /// HAProxy's stats CSV: its write backend has a server up, and its read backend too when there are replicas.
    pub fn haproxy_health(&self, s: &SiteState) -> Result<(), String> {
        let h = s.haproxy().ok_or("no HAProxy")?;
        let x = h.haproxy.as_ref().ok_or("no HAProxy")?;
        let (code, body) = http::get(&h.address, x.stats_port, "/;csv")?;
        if code != 200 {
            return Err(format!("stats: {code}"));
        }
        let up = |backend: &str| {
            body.lines().any(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f.first() == Some(&backend)
                    && !matches!(f.get(1), Some(&"FRONTEND") | Some(&"BACKEND"))
                    && f.get(17).is_some_and(|st| st.starts_with("UP"))
            })
        };
        if !up("postgres_write") {
            return Err("no server up in postgres_write".into());
        }
        if s.pg_hosts().count() > 1 && !up("postgres_read") {
            return Err("no server up in postgres_read".into());
        }
        Ok(())
    }

    /// The pid of the postmaster of a pg host, from its postmaster.pid, if it runs.
    pub fn postmaster_pid(&self, host: &str) -> Option<u32> {
        let pg = self.host(host)?.pg.as_ref()?;
        let text = std::fs::read_to_string(pg.data_dir.join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        (procs::alive(pid) && procs::cmdline(pid).contains(&*self.state.root.to_string_lossy()))
            .then_some(pid)
    }

    /// The running recorded process of `service` on `host`.
    pub fn running(&self, host: &str, service: &str) -> Option<Proc> {
        self.records()
            .into_iter()
            .rev()
            .find(|p| p.host == host && p.service == service && procs::is_ours(p, &self.state.root))
    }

    /// Sends `sig` to a process of this lab (checked against /proc first).
    pub fn signal(&self, pid: u32, sig: &str) -> Result<(), Error> {
        let start = procs::start_time(pid).unwrap_or(0);
        let p = Proc {
            host: String::new(),
            service: String::new(),
            pid,
            start,
        };
        if !procs::is_ours(&p, &self.state.root) {
            return Err(fail(format!("pid {pid} is not a process of this lab")));
        }
        procs::signal(pid, sig);
        Ok(())
    }

    /// Stops a process of this lab: `sig`, a bounded wait, then SIGKILL.
    pub fn stop_pid(&self, pid: u32, sig: &str) -> Result<(), Error> {
        let start = procs::start_time(pid).unwrap_or(0);
        self.signal(pid, sig)?;
        let left = procs::stop(&[(pid, start)], sig, STOP_GRACE);
        if left.is_empty() {
            Ok(())
        } else {
            Err(fail(format!("pid {pid} survived SIGKILL")))
        }
    }

    /// `patronictl list`, site by site, from the REST API.
    pub fn status_text(&self) -> String {
        let mut out = format!(
            "lab {} at {} (daemons run as {})\n",
            self.state.cluster,
            self.state.root.display(),
            self.state.user
        );
        for s in &self.state.sites {
            let kind = match &s.standby_of {
                Some(src) => format!(", standby of {src}"),
                None => String::new(),
            };
            out.push_str(&format!("\nsite {} (scope {}{kind})\n", s.name, s.scope));
            out.push_str(&format!(
                "  etcd: {}\n",
                match self.etcd_health(s) {
                    Ok(()) => "healthy".to_string(),
                    Err(e) => format!("UNHEALTHY: {e}"),
                }
            ));
            if let Some(h) = s.haproxy() {
                let x = h.haproxy.as_ref().map(|x| (x.write_port, x.read_port));
                if let Some((w, r)) = x {
                    out.push_str(&format!(
                        "  haproxy: write {}:{w}, read {}:{r} ({})\n",
                        h.address,
                        h.address,
                        match self.haproxy_health(s) {
                            Ok(()) => "routing".to_string(),
                            Err(e) => e,
                        }
                    ));
                }
            }
            out.push_str(&format!(
                "  {:<12} {:<16} {:<15} {:<12} {:>3} {:>10}\n",
                "Member", "Host", "Role", "State", "TL", "Lag in MB"
            ));
            match self.members(s) {
                Ok(ms) => {
                    for m in ms {
                        let role = match m.role.as_str() {
                            "leader" => "Leader",
                            "standby_leader" => "Standby Leader",
                            "sync_standby" => "Sync Standby",
                            "quorum_standby" => "Quorum Standby",
                            "replica" => "Replica",
                            r => r,
                        };
                        out.push_str(&format!(
                            "  {:<12} {:<16} {:<15} {:<12} {:>3} {:>10}\n",
                            m.name,
                            m.host,
                            role,
                            m.state,
                            m.timeline.map(|t| t.to_string()).unwrap_or_default(),
                            m.lag
                                .map(|l| (l / 1_048_576).to_string())
                                .unwrap_or_default()
                        ));
                    }
                }
                Err(e) => out.push_str(&format!("  (no member answers: {e})\n")),
            }
        }
        out
    }

    /// Stops exactly what this lab started, then removes the lab root.
    pub fn down(&self) -> Result<(), Error> {
        let t = Instant::now();
        let root = self.state.root.clone();
        let recs = self.records();
        let ours = |service: &str| -> Vec<(u32, u64)> {
            recs.iter()
                .filter(|p| p.service == service && procs::is_ours(p, &root))
                .map(|p| (p.pid, p.start))
                .collect()
        };
        let mut survivors = Vec::new();
        survivors.extend(procs::stop(&ours("haproxy"), "TERM", STOP_GRACE));
        // Patroni stops its PostgreSQL on SIGTERM.
        survivors.extend(procs::stop(&ours("patroni"), "TERM", STOP_GRACE));
        let others: Vec<(u32, u64)> = recs
            .iter()
            .filter(|p| !matches!(p.service.as_str(), "haproxy" | "patroni" | "etcd"))
            .filter(|p| procs::is_ours(p, &root))
            .map(|p| (p.pid, p.start))
            .collect();
        survivors.extend(procs::stop(&others, "INT", STOP_GRACE));
        // A postmaster whose Patroni was killed outlives it.
        let postmasters: Vec<(u32, u64)> = self
            .state
            .sites
            .iter()
            .flat_map(|s| s.pg_hosts())
            .filter_map(|h| self.postmaster_pid(&h.name))
            .filter_map(|pid| procs::start_time(pid).map(|s| (pid, s)))
            .collect();
        survivors.extend(procs::stop(&postmasters, "INT", STOP_GRACE));
        // etcd members stopping together each wait to hand their leadership
        // to another; their data goes with the lab root, so the wait is short.
        survivors.extend(procs::stop(&ours("etcd"), "TERM", Duration::from_secs(3)));
        // What those started and left behind (PostgreSQL backends of a killed
        // postmaster, a backup a callback started): the lab user's processes
        // whose command line names this lab root, and nothing else.
        let rest = procs::under_root(self.state.uid, &root);
        survivors.extend(procs::stop(&rest, "TERM", Duration::from_secs(10)));
        if !survivors.is_empty() {
            return Err(fail(format!(
                "processes {survivors:?} survived SIGKILL; the lab root {} is left in place",
                root.display()
            )));
        }
        if root.join(".lab").join("state.json").is_file() {
            std::fs::remove_dir_all(&root).map_err(io("removing", &root))?;
            // The default root's parent goes too once no other lab uses it.
            if let Some(parent) = root.parent().filter(|p| p.ends_with("pgimg-lab")) {
                let _ = std::fs::remove_dir(parent);
            }
        }
        println!(
            "lab {}: stopped {} process(es), removed {} in {}",
            self.state.cluster,
            recs.len(),
            root.display(),
            elapsed(t)
        );
        Ok(())
    }
}

/// A previous lab at `root` may be replaced once nothing of it runs;
/// anything else there is left alone.
fn clear_old_root(root: &Path) -> Result<(), Error> {
    if !root.exists() {
        return Ok(());
    }
    if root.join(".lab").join("state.json").is_file() {
        let old = Lab::open(root)?;
        if old
            .records()
            .iter()
            .any(|p| procs::is_ours(p, &old.state.root))
        {
            return Err(fail(format!(
                "a lab is running at {}: `pgimg lab down` it first",
                root.display()
            )));
        }
        return std::fs::remove_dir_all(root).map_err(io("removing", root));
    }
    let empty = std::fs::read_dir(root)
        .map_err(io("reading", root))?
        .next()
        .is_none();
    if empty {
        Ok(())
    } else {
        Err(fail(format!(
            "{} exists and is not a lab root (no .lab/state.json): choose another --root",
            root.display()
        )))
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    std::fs::write(path, bytes).map_err(io("writing", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("setting the mode of", path))
}

/// `pgimg lab up`.
pub fn up(opts: &Options) -> Result<Lab, Error> {
    let lab = Lab::prepare(opts)?;
    if let Err(e) = lab.start() {
        eprintln!(
            "lab did not become healthy; `pgimg lab status` and the logs say why, `pgimg lab down` cleans up"
        );
        return Err(e);
    }
    Ok(lab)
}
