//! Stage "plan": the resolved fleet → what each host gets, declared, no bytes.
//!
//! A `HostPlan` lists the host's files and directories (path → producer,
//! owner, group, mode), packages, units, ports, services and binaries, with
//! the typed context its templates will see. The roles it gets, and all of
//! the above, come from `roles/<role>/role.yaml` (`roles.rs`); nothing here
//! knows a role by name. `render` turns a plan into bytes.

pub mod context;
pub(crate) mod daytwo;
pub(crate) mod overlay;
pub mod roles;
pub mod secrets;
pub(crate) mod storage;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::model::{Cluster, Fleet, Host, Site};
use context::{HostContext, Mapping};
use roles::{Guarded, Per, RoleDefs, TypedFile, expand, expand_one};

/// What produces an entry of the host's root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Producer {
    Directory,
    /// A role template, by its path in the role tree (`pg/patroni.service.hbs`).
    Template(String),
    /// A file serialized from typed structs.
    Typed(TypedFile),
    /// A user file from `overlays/` (`source` is where it was found).
    User {
        source: String,
        bytes: Vec<u8>,
    },
}

/// One entry of the host's root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub producer: Producer,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

/// A daemon as its unit starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedService {
    pub name: String,
    pub unit: String,
    pub user: String,
    pub exec: Vec<String>,
    /// Paths; a leading `-` marks one the unit may start without.
    pub environment_files: Vec<String>,
    /// `KEY=value`.
    pub environment: Vec<String>,
}

/// A port the host opens (or a protocol without ports, such as VRRP), and
/// the sources the firewall lets connect to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedPort {
    /// `None` for a protocol without ports.
    pub port: Option<u16>,
    pub proto: String,
    pub service: String,
    /// Addresses (`a/32`, `b/128`) and networks allowed to connect, sorted.
    pub sources: BTreeSet<String>,
    /// The setting that chooses the port (`postgresql/port`), if `role.yaml` names it.
    pub setting: Option<String>,
    /// Whether `from:` names the client networks (`firewall.clients`).
    pub for_clients: bool,
}

/// Everything pgimg knows about one host after planning.
#[derive(Debug, Clone)]
pub struct HostPlan {
    pub cluster: String,
    pub site: String,
    pub name: String,
    /// The roles the host got, in name order.
    pub roles: Vec<String>,
    /// Absolute path on the host → entry; every parent directory is explicit.
    pub files: BTreeMap<String, Planned>,
    pub packages: BTreeSet<String>,
    pub units: BTreeSet<String>,
    /// What the host listens on, and who may connect (`role.yaml` `ports:`).
    pub ports: BTreeSet<PlannedPort>,
    pub services: Vec<PlannedService>,
    /// The directories the roles declare (`dirs:`) with their owner and
    /// mode, which the install paths apply after unpacking: tar keeps those
    /// of directories the packages already created.
    pub declared_dirs: BTreeMap<String, Planned>,
    /// Path on the host (unmapped) → the tool that is there.
    pub binaries: BTreeMap<String, String>,
    pub context: HostContext,
}

/// A cluster-level file: `clusters/<cluster>/<path>`, rendered from a role
/// template with a context of whole sites.
#[derive(Debug, Clone)]
pub struct PlannedClusterFile {
    pub path: String,
    pub template: String,
    pub mode: u32,
    pub context: ClusterContext,
}

/// What a cluster-level template sees.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ClusterContext {
    /// Every site, each through its representative host.
    Cluster {
        cluster: String,
        sites: Vec<Option<HostContext>>,
        root: &'static str,
    },
    /// A DR site and the site it follows.
    DrSite {
        cluster: String,
        dr: Option<Box<HostContext>>,
        source: Option<Box<HostContext>>,
        root: &'static str,
    },
}

pub fn parse_mode(s: &str, what: &str) -> Result<u32, Error> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            Error::Template(format!(
                "{what}: invalid mode `{s}`: expected octal such as `0644`"
            ))
        })
}

/// The ports a host's roles open: what [`plan_host`] plans of them, without
/// the rest of the plan (validation needs only these, for every host).
pub fn plan_ports(
    defs: &RoleDefs,
    fleet: &Fleet,
    cluster: &Cluster,
    site: &Site,
    host: &Host,
    m: &Mapping,
) -> Result<BTreeSet<PlannedPort>, Error> {
    let context = context::host_context(fleet, cluster, site, host, m);
    let ctx = serde_json::to_value(&context).expect("a host context serializes");
    let mut ports = BTreeSet::new();
    for (_, def, file) in host_roles(defs, &ctx)? {
        ports.extend(role_ports(def, &ctx, &file)?);
    }
    Ok(ports)
}

/// The host roles whose top-level `when:` holds for the host of `ctx`,
/// each with its definition's path.
fn host_roles<'d>(
    defs: &'d RoleDefs,
    ctx: &serde_json::Value,
) -> Result<Vec<(&'d String, &'d roles::RoleDef, String)>, Error> {
    let mut applying = Vec::new();
    for (role, def) in &defs.defs {
        let file = format!("roles/{role}/role.yaml");
        if def.is_host_role() && def.applies(ctx, &file)? {
            applying.push((role, def, file));
        }
    }
    Ok(applying)
}

/// The ports one role of a host opens, `file` being its definition's path.
fn role_ports(
    def: &roles::RoleDef,
    ctx: &serde_json::Value,
    file: &str,
) -> Result<Vec<PlannedPort>, Error> {
    let what = format!("{file}: ports");
    let mut ports = Vec::new();
    for p in &def.ports {
        if !p.applies(ctx, &what)? {
            continue;
        }
        let port = match &p.port {
            Some(t) => {
                let port = expand_one(t, ctx, &what)?;
                Some(port.parse::<u16>().map_err(|_| {
                    Error::Template(format!("{what}: port `{port}` is not a number"))
                })?)
            }
            None => None,
        };
        let mut sources = BTreeSet::new();
        for f in &p.from {
            for s in expand(f, ctx, &what)? {
                if !is_source(&s) {
                    return Err(Error::Template(format!(
                        "{what}: source `{s}` of port `{}` is not an address or a network",
                        p.service
                    )));
                }
                sources.insert(s);
            }
        }
        ports.push(PlannedPort {
            port,
            proto: p.proto.clone(),
            service: p.service.clone(),
            sources,
            setting: p.setting.clone(),
            for_clients: p.from.iter().any(|f| f.contains("firewall.clients")),
        });
    }
    Ok(ports)
}

/// Plans one host: the roles it gets and what they bring.
pub fn plan_host(
    defs: &RoleDefs,
    fleet: &Fleet,
    cluster: &Cluster,
    site: &Site,
    host: &Host,
    m: &Mapping,
) -> Result<HostPlan, Error> {
    let context = context::host_context(fleet, cluster, site, host, m);
    let ctx = serde_json::to_value(&context).expect("a host context serializes");
    let mut plan = HostPlan {
        cluster: cluster.name.clone(),
        site: site.name.clone(),
        name: host.name.clone(),
        roles: Vec::new(),
        files: BTreeMap::new(),
        packages: BTreeSet::new(),
        units: BTreeSet::new(),
        ports: BTreeSet::new(),
        services: Vec::new(),
        declared_dirs: BTreeMap::new(),
        binaries: BTreeMap::new(),
        context,
    };
    for (role, def, file) in host_roles(defs, &ctx)? {
        plan.roles.push(role.clone());
        let what = |field: &str| format!("{file}: {field}");
        for p in &def.packages {
            if p.applies(&ctx, &what("packages"))? {
                plan.packages
                    .extend(expand(&p.name, &ctx, &what("packages"))?);
            }
        }
        for u in &def.units {
            if u.applies(&ctx, &what("units"))? {
                plan.units.extend(expand(&u.name, &ctx, &what("units"))?);
            }
        }
        plan.ports.extend(role_ports(def, &ctx, &file)?);
        for d in &def.dirs {
            if !d.applies(&ctx, &what("dirs"))? {
                continue;
            }
            let path = expand_one(&d.path, &ctx, &what("dirs"))?;
            let planned = Planned {
                producer: Producer::Directory,
                mode: parse_mode(&d.mode, &what("dirs"))?,
                owner: d.owner.clone(),
                group: d.group.clone(),
            };
            plan.declared_dirs.insert(path.clone(), planned.clone());
            insert(&mut plan.files, path, planned, &file)?;
        }
        for f in &def.files {
            if !f.applies(&ctx, &what("files"))? {
                continue;
            }
            let path = expand_one(&f.path, &ctx, &what("files"))?;
            let producer = match (&f.template, f.typed) {
                (Some(t), None) => Producer::Template(format!("{role}/{t}")),
                (None, Some(t)) => Producer::Typed(t),
                _ => unreachable!("RoleDefs::parse checks that a file has one producer"),
            };
            let planned = Planned {
                producer,
                mode: parse_mode(&f.mode, &what("files"))?,
                owner: f.owner.clone(),
                group: f.group.clone(),
            };
            insert(&mut plan.files, path, planned, &file)?;
        }
        for s in &def.services {
            if !s.applies(&ctx, &what("services"))? {
                continue;
            }
            let w = what("services");
            let mut exec = Vec::new();
            for a in &s.exec {
                exec.extend(expand(a, &ctx, &w)?);
            }
            let mut environment_files = Vec::new();
            for e in &s.environment_files {
                environment_files.extend(expand(e, &ctx, &w)?);
            }
            let mut environment = Vec::new();
            for e in &s.environment {
                environment.extend(expand(e, &ctx, &w)?);
            }
            plan.services.push(PlannedService {
                name: s.name.clone(),
                unit: s.unit.clone(),
                user: s.user.clone(),
                exec,
                environment_files,
                environment,
            });
        }
        for b in &def.binaries {
            if b.applies(&ctx, &what("binaries"))? {
                let path = expand_one(&b.path, &ctx, &what("binaries"))?;
                plan.binaries.insert(path, b.tool.clone());
            }
        }
    }
    add_parents(&mut plan.files);
    Ok(plan)
}

/// What a firewall source may look like: an address or a network
/// (`a.b.c.d/n`, `x::/n`), never a name. Whether it is a valid one is the
/// semantic checks' business (PG0103), which run before any build.
fn is_source(s: &str) -> bool {
    !s.is_empty()
        && (s.contains('.') || s.contains(':'))
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/'))
}

/// Two roles may plan the same directory alike; anything else planned twice is an error.
fn insert(
    files: &mut BTreeMap<String, Planned>,
    path: String,
    planned: Planned,
    file: &str,
) -> Result<(), Error> {
    match files.get(&path) {
        Some(old) if *old != planned || old.producer != Producer::Directory => {
            Err(Error::Template(format!(
                "{file}: `{path}` is already planned by another role"
            )))
        }
        _ => {
            files.insert(path, planned);
            Ok(())
        }
    }
}

/// Every directory leading to an entry is explicit in the archive; the
/// ones no role planned are root-owned and 0755, as on a stock system.
fn add_parents(files: &mut BTreeMap<String, Planned>) {
    let mut parents = BTreeSet::new();
    for path in files.keys() {
        let mut p = path.as_str();
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if p.is_empty() {
                break;
            }
            parents.insert(p.to_string());
        }
    }
    for p in parents {
        // Sticky world-writable directories keep their stock mode.
        let mode = if matches!(p.as_str(), "/tmp" | "/var/tmp") {
            0o1777
        } else {
            0o755
        };
        files.entry(p).or_insert(Planned {
            producer: Producer::Directory,
            mode,
            owner: "root".into(),
            group: "root".into(),
        });
    }
}

/// Plans a cluster's own files: each role's `cluster_files`, with the
/// contexts of each site's representative host.
pub fn plan_cluster(
    defs: &RoleDefs,
    fleet: &Fleet,
    cluster: &Cluster,
    m: &Mapping,
) -> Result<Vec<PlannedClusterFile>, Error> {
    let site_ctx = |site: &Site| {
        site.representative()
            .map(|h| context::host_context(fleet, cluster, site, h, m))
    };
    let mut out = Vec::new();
    for (role, def) in &defs.defs {
        let file = format!("roles/{role}/role.yaml");
        for f in &def.cluster_files {
            let mode = parse_mode(&f.mode, &file)?;
            let contexts: Vec<ClusterContext> = match f.per {
                Per::Cluster => vec![ClusterContext::Cluster {
                    cluster: cluster.name.clone(),
                    sites: cluster.sites.iter().map(site_ctx).collect(),
                    root: "",
                }],
                Per::DrSite => cluster
                    .sites
                    .iter()
                    .filter(|s| s.is_dr())
                    .filter_map(|s| cluster.source_of(s).map(|src| (s, src)))
                    .map(|(s, src)| ClusterContext::DrSite {
                        cluster: cluster.name.clone(),
                        dr: site_ctx(s).map(Box::new),
                        source: site_ctx(src).map(Box::new),
                        root: "",
                    })
                    .collect(),
            };
            for context in contexts {
                let json: Value = serde_json::to_value(&context).expect("a context serializes");
                out.push(PlannedClusterFile {
                    path: expand_one(&f.path, &json, &format!("{file}: cluster_files"))?,
                    template: format!("{role}/{}", f.template),
                    mode,
                    context,
                });
            }
        }
    }
    Ok(out)
}
