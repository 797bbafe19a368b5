//! Stages "plan" and "render": the resolved fleet → an in-memory artifact tree.
//!
//! Pure: nothing here reads or writes files, the clock or the environment.
//! Hosts render in parallel; the tree is a sorted map, so the output does not
//! depend on which thread finished first.

pub mod artifact;
pub mod context;
pub mod install;
pub mod manifest;
pub mod overlay;
pub mod patroni;
pub mod secrets;
pub mod templates;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde_json::Value;

use crate::Error;
use crate::model::{Cluster, Fleet, Host, Site};
use crate::spec::v1::Role;
pub use artifact::{Artifact, ArtifactTree};
use context::Mapping;
use templates::{Guarded, Roles};

/// A file or directory as it lands on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsEntry {
    /// `None` for a directory.
    pub content: Option<Vec<u8>>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

/// Everything pgimg knows about one host after planning.
#[derive(Debug, Clone)]
pub struct HostPlan {
    pub cluster: String,
    pub site: String,
    pub name: String,
    /// Absolute path on the host → entry; parents are explicit.
    pub rootfs: BTreeMap<String, RootfsEntry>,
    pub packages: BTreeSet<String>,
    pub units: BTreeSet<String>,
    /// (port, protocol, service).
    pub ports: BTreeSet<(u16, String, String)>,
    /// The host's template context, for the delivery formats.
    pub context: Value,
}

pub fn parse_mode(s: &str) -> Result<u32, Error> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            Error::Template(format!("invalid mode `{s}`: expected octal such as `0644`"))
        })
}

fn roles_of(site: &Site, host: &Host) -> Vec<&'static str> {
    let mut r = vec!["common"];
    if host.has(Role::Etcd) {
        r.push("etcd");
    }
    if host.has(Role::Pg) {
        r.push("pg");
    }
    if host.has(Role::Haproxy) {
        r.push("haproxy");
    }
    if site.is_dr() {
        r.push("dr");
    }
    r
}

/// Plans one host: which files, directories, packages, units and ports its roles bring.
pub fn plan_host(
    roles: &Roles,
    fleet: &Fleet,
    cluster: &Cluster,
    site: &Site,
    host: &Host,
    m: &Mapping,
) -> Result<HostPlan, Error> {
    let ctx = context::host_context(fleet, cluster, site, host, m);
    let mut plan = HostPlan {
        cluster: cluster.name.clone(),
        site: site.name.clone(),
        name: host.name.clone(),
        rootfs: BTreeMap::new(),
        packages: BTreeSet::new(),
        units: BTreeSet::new(),
        ports: BTreeSet::new(),
        context: Value::Null,
    };
    let hctx = handlebars::Context::from(ctx.clone());
    for role in roles_of(site, host) {
        let Some(def) = roles.defs.get(role) else {
            continue;
        };
        let what = |field: &str| format!("roles/{role}/role.yaml: {field}");
        for p in def.packages.iter().filter(|p| p.applies(&ctx)) {
            let name = roles.render_str(&what("packages"), &p.name, &hctx)?;
            for n in name.split_whitespace() {
                plan.packages.insert(n.to_string());
            }
        }
        for u in def.units.iter().filter(|u| u.applies(&ctx)) {
            plan.units
                .insert(roles.render_str(&what("units"), &u.name, &hctx)?);
        }
        for p in def.ports.iter().filter(|p| p.applies(&ctx)) {
            let port = roles.render_str(&what("ports"), &p.port, &hctx)?;
            let port: u16 = port.parse().map_err(|_| {
                Error::Template(format!("{}: port `{port}` is not a number", what("ports")))
            })?;
            plan.ports
                .insert((port, p.proto.clone(), p.service.clone()));
        }
        for d in def.dirs.iter().filter(|d| d.applies(&ctx)) {
            let path = roles.render_str(&what("dirs"), &d.path, &hctx)?;
            plan.rootfs.insert(
                path,
                RootfsEntry {
                    content: None,
                    mode: parse_mode(&d.mode)?,
                    owner: d.owner.clone(),
                    group: d.group.clone(),
                },
            );
        }
        for f in def.files.iter().filter(|f| f.applies(&ctx)) {
            let path = roles.render_str(&what("files"), &f.path, &hctx)?;
            let content = match f.template.as_str() {
                "builtin:patroni" => patroni::render(cluster, site, host, m),
                t => roles.render_file_with(&format!("{role}/{t}"), &hctx)?,
            };
            plan.rootfs.insert(
                path,
                RootfsEntry {
                    content: Some(content.into_bytes()),
                    mode: parse_mode(&f.mode)?,
                    owner: f.owner.clone(),
                    group: f.group.clone(),
                },
            );
        }
    }
    add_parents(&mut plan.rootfs);
    plan.context = ctx;
    Ok(plan)
}

/// Every directory leading to an entry is explicit in the archive; the
/// ones no role planned are root-owned and 0755, as on a stock system.
fn add_parents(rootfs: &mut BTreeMap<String, RootfsEntry>) {
    let mut parents = BTreeSet::new();
    for path in rootfs.keys() {
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
        rootfs.entry(p).or_insert(RootfsEntry {
            content: None,
            mode,
            owner: "root".into(),
            group: "root".into(),
        });
    }
}

/// Plans every host, in parallel, in fleet order.
pub fn plan(roles: &Roles, fleet: &Fleet, m: &Mapping) -> Result<Vec<HostPlan>, Error> {
    let hosts: Vec<(&Cluster, &Site, &Host)> = fleet.hosts().collect();
    hosts
        .par_iter()
        .map(|(c, s, h)| plan_host(roles, fleet, c, s, h, m))
        .collect()
}

/// The per-host artifacts of a plan.
pub fn host_artifacts(plan: &HostPlan, mtime: u64) -> Vec<(String, Artifact)> {
    let base = format!("hosts/{}", plan.name);
    let mut out = Vec::new();
    for (path, e) in &plan.rootfs {
        if let Some(bytes) = &e.content {
            let mode = if e.mode & 0o111 != 0 { 0o755 } else { 0o644 };
            out.push((
                format!("{base}/rootfs{path}"),
                Artifact {
                    bytes: bytes.clone(),
                    mode,
                },
            ));
        }
    }
    out.push((
        format!("{base}/overlay.tar.gz"),
        Artifact {
            bytes: overlay::tar_gz(&plan.rootfs, mtime),
            mode: 0o644,
        },
    ));
    out.push((
        format!("{base}/overlay.list"),
        Artifact {
            bytes: overlay::listing(&plan.rootfs).into_bytes(),
            mode: 0o644,
        },
    ));
    let mut rpms: String = plan.packages.iter().map(|p| format!("{p}\n")).collect();
    if rpms.is_empty() {
        rpms.push('\n');
    }
    out.push((
        format!("{base}/rpms.txt"),
        Artifact {
            bytes: rpms.into_bytes(),
            mode: 0o644,
        },
    ));
    out
}

/// Renders the cluster-level artifacts: the check script and the DR runbooks.
pub fn cluster_artifacts(
    roles: &Roles,
    cluster: &Cluster,
    plans: &[HostPlan],
) -> Result<Vec<(String, Artifact)>, Error> {
    let site_ctx = |site: &Site| -> Value {
        let first = site.with_role(Role::Pg).next().or(site.hosts.first());
        first
            .and_then(|h| plans.iter().find(|p| p.name == h.name))
            .map(|p| p.context.clone())
            .unwrap_or(Value::Null)
    };
    let sites: Vec<Value> = cluster.sites.iter().map(site_ctx).collect();
    let mut out = Vec::new();
    let ctx = serde_json::json!({"cluster": cluster.name, "sites": sites, "root": ""});
    let check = roles.render_file("cluster/check.hbs", &ctx)?;
    out.push((
        format!("clusters/{}/check", cluster.name),
        Artifact {
            bytes: check.into_bytes(),
            mode: 0o755,
        },
    ));
    for site in cluster.sites.iter().filter(|s| s.is_dr()) {
        let Some(src) = cluster.source_of(site) else {
            continue;
        };
        let ctx = serde_json::json!({
            "cluster": cluster.name,
            "dr": site_ctx(site),
            "source": site_ctx(src),
            "root": "",
        });
        let runbook = roles.render_file("dr/runbook.md.hbs", &ctx)?;
        out.push((
            format!("clusters/{}/dr-runbook-{}.md", cluster.name, site.name),
            Artifact {
                bytes: runbook.into_bytes(),
                mode: 0o644,
            },
        ));
    }
    Ok(out)
}
