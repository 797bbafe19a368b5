//! The machine the lab runs on: its user, its tools, its locale, and
//! systemd's reading of environment files.

use super::*;

pub(crate) fn effective_uid() -> u32 {
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
pub(crate) fn getent(key: &str) -> Option<(String, u32, u32)> {
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
pub(crate) fn lab_user(superuser: &str) -> Result<(String, u32, u32), Error> {
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

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}

pub(crate) fn tool(name: &str, package: &str) -> Result<PathBuf, Error> {
    which(name).ok_or_else(|| {
        fail(format!(
            "`{name}` not found on PATH: install {package} (or run scripts/install-test-deps and `. /opt/pgimg-deps/env`)"
        ))
    })
}

/// The PostgreSQL bin directory of `major`: `$PGIMG_PG_BINDIR`, else the
/// directory of `pg_ctl` on PATH, else the distributions' usual places.
pub(crate) fn pg_bindir(major: u32) -> Result<PathBuf, Error> {
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
pub(crate) fn normalize_locale(l: &str) -> String {
    l.to_ascii_lowercase().replace("utf-8", "utf8")
}

pub(crate) fn check_locale(locale: &str) -> Result<(), Error> {
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

/// The `KEY=value` lines of an environment file, read as systemd reads an
/// `EnvironmentFile=` when it starts a unit.
pub(crate) fn env_file(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// The programs of this machine that stand in for a host's packages, by the
/// tool names of `role.yaml`'s `binaries:`, found once.
pub(crate) struct Tools {
    pg_major: u32,
    found: BTreeMap<String, PathBuf>,
}

impl Tools {
    pub(crate) fn new(pg_major: u32) -> Self {
        Tools {
            pg_major,
            found: BTreeMap::new(),
        }
    }

    /// Where `tool` is on this machine; an error naming the package to install.
    pub(crate) fn get(&mut self, tool: &str) -> Result<PathBuf, Error> {
        if let Some(p) = self.found.get(tool) {
            return Ok(p.clone());
        }
        let path = match tool {
            "pg-bindir" => pg_bindir(self.pg_major)?,
            "etcd" => self::tool("etcd", "etcd 3.5 (Debian: etcd-server)")?,
            "etcdctl" => self::tool("etcdctl", "etcd 3.5 (Debian: etcd-client)")?,
            "patroni" | "patronictl" => self::tool(
                tool,
                "Patroni 4 (pip: patroni[psycopg3,etcd3]; Debian: patroni)",
            )?,
            "pgbackrest" => self::tool(
                "pgbackrest",
                "pgBackRest >= 2.52, the first to support PostgreSQL 17 (Debian 13: pgbackrest)",
            )?,
            "haproxy" => self::tool("haproxy", "HAProxy (Debian: haproxy)")?,
            other => {
                return Err(fail(format!(
                    "role.yaml names a program `{other}` the lab does not know how to provide"
                )));
            }
        };
        self.found.insert(tool.to_string(), path.clone());
        Ok(path)
    }

    /// The directories of the programs found, for the lab's PATH.
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for (tool, p) in &self.found {
            if tool == "pg-bindir" {
                continue;
            }
            if let Some(d) = p.parent()
                && !out.iter().any(|x| x == d)
            {
                out.push(d.to_path_buf());
            }
        }
        out
    }
}
