//! Builds every example spec and turns each artifact of each host into a
//! check job; runs the jobs on a few threads and collects every failure.
//!
//! Each example is built three times: as a real build (what ships; every
//! check that sends no packet reads it), and twice with every host on its
//! own loopback address and every absolute path under a scratch directory,
//! once for Patroni's check and once for etcd's, which connect and listen.
//! Two loopback builds, because the two checks of a host may run at the
//! same time: each gets its own addresses, so their ports never collide.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use pgimg::plan::context::Mapping;

use crate::checks;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every example spec: `examples/*.yml`, sorted.
pub fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    v.sort();
    v
}

/// Which consumers a run covers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Consumer {
    Kickstart,
    CloudInit,
    Haproxy,
    Patroni,
    Systemd,
    Pgbackrest,
    Etcd,
    Pyyaml,
    Repositories,
}

pub const ALL: &[Consumer] = &[
    Consumer::Kickstart,
    Consumer::CloudInit,
    Consumer::Haproxy,
    Consumer::Patroni,
    Consumer::Systemd,
    Consumer::Pgbackrest,
    Consumer::Etcd,
    Consumer::Pyyaml,
    Consumer::Repositories,
];

/// One example, built.
pub struct Built {
    pub example: String,
    /// The real build.
    pub real: PathBuf,
    /// Loopback builds for Patroni's and etcd's checks.
    pub lo_patroni: Option<PathBuf>,
    pub lo_etcd: Option<PathBuf>,
    /// Host names, in fleet order.
    pub hosts: Vec<String>,
    /// What pgimg meant each host's patroni.yml to say, from its typed structs.
    pub patroni_meant: BTreeMap<String, Value>,
    /// The spec's PGDG bases and repository overrides, which rendered URLs may name.
    pub pgdg_bases: Vec<String>,
    pub repo_overrides: Vec<String>,
}

/// Second octet of an example's loopback addresses: distinct per example
/// and per purpose, away from the 127.0.0.0/16 other local tests use.
fn loopback_net(example_index: usize, purpose: usize) -> u8 {
    u8::try_from(100 + 4 * (example_index % 35) + purpose).expect("octet")
}

fn loopback(net: u8, i: usize) -> String {
    format!("127.{net}.{}.{}", i / 250, i % 250 + 2)
}

/// Every host address of the fleet on its own 127.N.x.y (y >= 2: Patroni
/// rejects 127.0.0.1 as a connect address), each host's 127.0.0.1 on
/// 127.(N+1).x.y, and absolute paths under `root`.
pub fn loopback_mapping(fleet: &pgimg::model::Fleet, net: u8, root: &Path) -> Mapping {
    let mut m = Mapping {
        root: Some(root.display().to_string()),
        ..Mapping::default()
    };
    for (i, (_, _, h)) in fleet.hosts().enumerate() {
        m.addresses.insert(h.address.clone(), loopback(net, i));
        for a in &h.extra_addresses {
            m.addresses.insert(a.clone(), loopback(net, i));
        }
        m.localhost.insert(h.name.clone(), loopback(net + 1, i));
    }
    m
}

fn build_into(
    v: &pgimg::Validated,
    roles: &pgimg::load::RoleTree,
    mapping: Mapping,
    out: &Path,
) -> Result<(), String> {
    let inputs = pgimg::BuildInputs {
        roles: roles.clone(),
        secrets: Default::default(),
        mapping,
        overlays: Default::default(),
    };
    let tree = pgimg::build(v, &inputs).map_err(|e| format!("build failed: {e}"))?;
    pgimg::write::write(&tree, out).map_err(|e| format!("writing {}: {e}", out.display()))
}

/// The TLS files of every host of a loopback build, where its mapping puts
/// them (`/etc/pgimg/tls/` under the host's root): a CA per cluster and host
/// certificates for the loopback addresses, made by `secrets init`'s code.
fn write_tls(fleet: &pgimg::model::Fleet, m: &Mapping) -> Result<(), String> {
    use pgimg::plan::context::paths;
    use std::os::unix::fs::PermissionsExt;
    let today = pgimg::certs::Day::from_unix(pgimg::load::unix_now());
    let put = |path: String, text: &str, mode: u32| -> Result<(), String> {
        let p = PathBuf::from(&path);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&p, text).map_err(|e| format!("{path}: {e}"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{path}: {e}"))
    };
    for c in fleet.clusters.iter().filter(|c| c.secrets.tls.enabled) {
        let ca = pgimg::certs::new_ca(&c.name, today).map_err(|e| e.to_string())?;
        for s in &c.sites {
            for h in &s.hosts {
                put(m.path(&h.name, paths::TLS_CA), &ca.cert, 0o644)?;
                if !(h.has(pgimg::spec::v1::Role::Pg) || h.has(pgimg::spec::v1::Role::Etcd)) {
                    continue;
                }
                let names = pgimg::plan::secrets::tls_names(s, h, m);
                let pem = pgimg::certs::host_cert(&c.name, &ca.key, &names, today)
                    .map_err(|e| e.to_string())?;
                put(m.path(&h.name, paths::TLS_CERT), &pem.cert, 0o644)?;
                put(m.path(&h.name, paths::TLS_PG_KEY), &pem.key, 0o600)?;
                put(m.path(&h.name, paths::TLS_ETCD_KEY), &pem.key, 0o600)?;
            }
        }
    }
    Ok(())
}

/// Builds one example (real and loopback) under `tmp`.
pub fn build_example(spec: &Path, index: usize, tmp: &Path) -> Result<Built, String> {
    let example = spec
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let source = pgimg::load::spec(spec).map_err(|e| e.to_string())?;
    let v = pgimg::validate(source, false).map_err(|d| {
        format!(
            "{example} does not validate:\n{}",
            d.iter()
                .map(|d| pgimg::diag::render_human(d, None))
                .collect::<String>()
        )
    })?;
    let roles = pgimg::load::RoleTree::embedded();
    let real = tmp.join("real");
    build_into(&v, &roles, Mapping::default(), &real)?;
    let mut lo = Vec::new();
    for (purpose, name) in [(0, "lo-patroni"), (2, "lo-etcd")] {
        let dir = tmp.join(name);
        let m = loopback_mapping(
            &v.fleet,
            loopback_net(index, purpose),
            &tmp.join(format!("{name}-root")),
        );
        write_tls(&v.fleet, &m)?;
        build_into(&v, &roles, m, &dir)?;
        lo.push(dir);
    }
    let mut patroni_meant = BTreeMap::new();
    for (c, s, h) in v.fleet.hosts() {
        if h.has(pgimg::spec::v1::Role::Pg) {
            let cfg = pgimg::render::patroni::config(c, s, h, &Mapping::default());
            patroni_meant.insert(
                h.name.clone(),
                serde_json::to_value(cfg).map_err(|e| e.to_string())?,
            );
        }
    }
    let mut pgdg_bases = Vec::new();
    let mut repo_overrides = Vec::new();
    for (_, _, h) in v.fleet.hosts() {
        let r = &h.config.repos;
        pgdg_bases.push(r.pgdg.clone());
        repo_overrides.extend(
            [
                &r.baseos,
                &r.appstream,
                &r.installer,
                &r.pgdg_extras,
                &r.pypi,
            ]
            .into_iter()
            .flatten()
            .cloned(),
        );
    }
    pgdg_bases.sort();
    pgdg_bases.dedup();
    repo_overrides.sort();
    repo_overrides.dedup();
    let mut lo = lo.into_iter();
    Ok(Built {
        pgdg_bases,
        repo_overrides,
        example,
        real,
        lo_patroni: lo.next(),
        lo_etcd: lo.next(),
        hosts: v.fleet.hosts().map(|(_, _, h)| h.name.clone()).collect(),
        patroni_meant,
    })
}

/// One check of one artifact.
pub struct Job {
    /// `example: host H: file: consumer`, the prefix of any failure.
    pub label: String,
    pub run: Box<dyn FnOnce() -> Result<(), String> + Send>,
}

impl Job {
    fn new(label: String, run: impl FnOnce() -> Result<(), String> + Send + 'static) -> Job {
        Job {
            label,
            run: Box::new(run),
        }
    }
}

/// Files under a directory, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            e.path()
                .strip_prefix(dir)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect();
    out.sort();
    out
}

fn is_unit(rel: &str) -> bool {
    (rel.starts_with("etc/systemd/system/") || rel.starts_with("usr/lib/systemd/system/"))
        && [
            ".service", ".timer", ".socket", ".path", ".mount", ".target",
        ]
        .iter()
        .any(|s| rel.ends_with(s))
        && !rel.contains(".d/")
}

/// A directory for one job's scratch files.
fn scratch(tmp: &Path, n: &AtomicUsize) -> PathBuf {
    let d = tmp.join(format!("job-{}", n.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// The check jobs of every host of a built example. Missing delivery files
/// are failures: the suite never passes because there was nothing to check.
pub fn jobs(b: &Built, which: &[Consumer], tmp: &Path) -> Vec<Job> {
    let counter = std::sync::Arc::new(AtomicUsize::new(0));
    let mut jobs = Vec::new();
    let mut yaml_files: Vec<(String, String, PathBuf, Option<Value>)> = Vec::new();
    let ex = &b.example;
    let on = |c: Consumer| which.contains(&c);
    for host in &b.hosts {
        let hdir = b.real.join("hosts").join(host);
        let rootfs = hdir.join("rootfs");
        let files = files_under(&rootfs);
        let label = |file: &str, consumer: &str| format!("{ex}: host {host}: {file}: {consumer}");

        let ks = hdir.join("kickstart.ks");
        if on(Consumer::Kickstart) {
            let l = label(&format!("hosts/{host}/kickstart.ks"), "ksvalidator");
            let work = scratch(tmp, &counter);
            jobs.push(Job::new(l, move || {
                if !ks.exists() {
                    return Err("pgimg produced no kickstart.ks for this host".into());
                }
                checks::kickstart(&ks, &work)
            }));
        }
        let ud = hdir.join("user-data");
        if on(Consumer::CloudInit) || on(Consumer::Pyyaml) {
            if !ud.exists() {
                let l = label(&format!("hosts/{host}/user-data"), "cloud-init");
                jobs.push(Job::new(l, || {
                    Err("pgimg produced no user-data for this host".into())
                }));
            } else {
                // The cloud-config inside (gunzipped, out of its MIME part) is
                // what PyYAML reads; the extraction's own errors are the
                // cloud-init job's to report.
                let cfg_path = tmp.join(format!("cloud-config-{host}.yaml"));
                if let Ok(cfg) = std::fs::read(&ud)
                    .map_err(|e| e.to_string())
                    .and_then(|b| checks::cloud_config_of(&b))
                {
                    std::fs::write(&cfg_path, cfg).expect("writing cloud-config");
                    yaml_files.push((
                        host.clone(),
                        format!("hosts/{host}/user-data"),
                        cfg_path,
                        None,
                    ));
                }
                if on(Consumer::CloudInit) {
                    let l = label(&format!("hosts/{host}/user-data"), "cloud-init schema");
                    let work = scratch(tmp, &counter);
                    jobs.push(Job::new(l, move || {
                        checks::user_data(&ud, &work).map(|_| ())
                    }));
                }
            }
        }
        if on(Consumer::Repositories) {
            let l = label(
                &format!("hosts/{host}/{{kickstart.ks,user-data,rpms.txt}}"),
                "repositories",
            );
            let (ks, ud, rpms) = (
                hdir.join("kickstart.ks"),
                hdir.join("user-data"),
                hdir.join("rpms.txt"),
            );
            let (bases, overrides) = (b.pgdg_bases.clone(), b.repo_overrides.clone());
            jobs.push(Job::new(l, move || {
                let facts = checks::RepoFacts::load(&root(), &bases, &overrides)?;
                let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
                let ks = String::from_utf8_lossy(&read(&ks)?).into_owned();
                let cfg = checks::cloud_config_of(&read(&ud)?)?;
                let rpms = String::from_utf8_lossy(&read(&rpms)?).into_owned();
                checks::repositories(&facts, &ks, &cfg, &rpms)
            }));
        }
        let mut units = Vec::new();
        for rel in &files {
            let shown = format!("hosts/{host}/rootfs/{rel}");
            let path = rootfs.join(rel);
            let name = rel.rsplit('/').next().unwrap_or("");
            if on(Consumer::Haproxy) && name == "haproxy.cfg" {
                // The loopback copy: its `ca-file` is under the build's root,
                // where the suite put the TLS files (`write_tls`).
                let lo = b
                    .lo_patroni
                    .as_ref()
                    .map(|d| d.join("hosts").join(host).join("rootfs").join(rel));
                // Without one (a suite run on a real build only), the file itself.
                let lo = lo.unwrap_or_else(|| path.clone());
                jobs.push(Job::new(label(&shown, "haproxy -dW -c"), move || {
                    checks::haproxy(&lo)
                }));
            } else if name == "patroni.yml" {
                if on(Consumer::Patroni) {
                    let lo = b
                        .lo_patroni
                        .as_ref()
                        .map(|d| d.join("hosts").join(host).join("rootfs").join(rel));
                    let work = scratch(tmp, &counter);
                    jobs.push(Job::new(
                        label(&shown, "patroni --validate-config"),
                        move || {
                            let lo = lo.ok_or("no loopback build")?;
                            checks::patroni(&lo, &work)
                        },
                    ));
                }
                yaml_files.push((
                    host.clone(),
                    shown.clone(),
                    path.clone(),
                    b.patroni_meant.get(host).cloned(),
                ));
            } else if on(Consumer::Pgbackrest) && name == "pgbackrest.conf" {
                jobs.push(Job::new(label(&shown, "pgbackrest"), move || {
                    checks::pgbackrest(&path)
                }));
            } else if on(Consumer::Etcd) && rel.starts_with("etc/etcd/") && name.ends_with(".conf")
            {
                let lo = b
                    .lo_etcd
                    .as_ref()
                    .map(|d| d.join("hosts").join(host).join("rootfs").join(rel));
                let work = scratch(tmp, &counter);
                jobs.push(Job::new(label(&shown, "etcd"), move || {
                    let lo = lo.ok_or("no loopback build")?;
                    checks::etcd(&lo, &work)
                }));
            } else if is_unit(rel) {
                units.push(rel.clone());
            } else if name.ends_with(".yml") || name.ends_with(".yaml") {
                yaml_files.push((host.clone(), shown.clone(), path.clone(), None));
            }
        }
        if on(Consumer::Systemd) && !units.is_empty() {
            // One scratch root per host, prepared once for all its units.
            let l = label(
                &format!("hosts/{host}/rootfs/{{{}}}", units.join(",")),
                "systemd-analyze verify",
            );
            let work = scratch(tmp, &counter);
            let rootfs = rootfs.clone();
            let host = host.clone();
            let ex = ex.clone();
            jobs.push(Job::new(l, move || {
                let errs: Vec<String> = checks::systemd_units(&rootfs, &units, &work)
                    .into_iter()
                    .filter_map(|(u, r)| {
                        r.err()
                            .map(|e| format!("{ex}: host {host}: hosts/{host}/rootfs/{u}: {e}"))
                    })
                    .collect();
                if errs.is_empty() {
                    Ok(())
                } else {
                    Err(errs.join("\n"))
                }
            }));
        }
    }
    if on(Consumer::Pyyaml) && !yaml_files.is_empty() {
        let l = format!("{ex}: YAML artifacts of every host: PyYAML");
        jobs.push(Job::new(l, move || pyyaml_job(&yaml_files)));
    }
    jobs
}

/// Loads every YAML artifact with PyYAML and compares it with what pgimg
/// meant: its typed structs where it has them (patroni.yml), else its own
/// YAML 1.2 reading of the same bytes.
fn pyyaml_job(files: &[(String, String, PathBuf, Option<Value>)]) -> Result<(), String> {
    let paths: Vec<PathBuf> = files.iter().map(|f| f.2.clone()).collect();
    let loaded = checks::pyyaml_load(&paths)?;
    let mut errs = Vec::new();
    for ((host, shown, path, typed), py) in files.iter().zip(loaded) {
        let r = (|| -> Result<(), String> {
            let py = py.map_err(|e| format!("PyYAML cannot load it: {e}"))?;
            let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
            let read12 = checks::yaml12(&text).map_err(|e| format!("pgimg's YAML reader: {e}"))?;
            let mut d = checks::yaml_differences(&read12, &py);
            if let Some(t) = typed {
                d.extend(
                    checks::yaml_differences(t, &py)
                        .into_iter()
                        .map(|x| format!("{x} (against the typed config)")),
                );
            }
            if d.is_empty() {
                Ok(())
            } else {
                Err(format!("PyYAML reads it differently:\n{}", d.join("\n")))
            }
        })();
        if let Err(e) = r {
            errs.push(format!("host {host}: {shown}: {e}"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}

/// Runs jobs on `workers` threads; returns one message per failed job.
pub fn run_jobs(jobs: Vec<Job>, workers: usize) -> Vec<String> {
    let queue = Mutex::new(jobs.into_iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some(job) = next else { break };
                    let label = job.label.clone();
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.run))
                        .unwrap_or_else(|_| Err("the check panicked".into()));
                    if let Err(e) = r {
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{label}:\n{}", indent(&e)));
                    }
                }
            });
        }
    });
    let mut f = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    f.sort();
    f
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Worker threads: consumers mostly wait on Python start-up and I/O.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}
