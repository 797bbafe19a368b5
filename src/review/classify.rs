//! What each change means for a running cluster, with the exact action:
//! reinstall, restart or reload which unit, the `patronictl edit-config`
//! patch of a DCS change, PostgreSQL parameters that need a restart, and
//! the procedure of a member or site added or removed.
//!
//! The facts behind each rule are in `effects.rs`, as data.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use super::archive;
use super::diff::{
    ClusterReport, Detail, FileChange, HostReport, Report, SiteReport, Status, Tree, host_meta,
    hosts_of,
};
use super::effects::{self, Effect};

/// The kinds of action, in the order an operator would take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Only a new installation (or a new cloud instance) applies the change.
    Reinstall,
    /// A member or a site joins or leaves.
    Topology,
    /// `patronictl edit-config`: the running cluster's dynamic configuration.
    Dcs,
    /// Packages to install or remove on the running host.
    Packages,
    /// Changed files to put in place.
    Files,
    /// A command to run on the host.
    Run,
    /// `systemctl restart`.
    Restart,
    /// `systemctl reload`.
    Reload,
    /// PostgreSQL needs a restart (Patroni's `pending_restart`).
    PostgresRestart,
    /// Nothing to restart: said so, with the reason.
    NoRestart,
}

impl ActionKind {
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::Reinstall => "reinstall",
            ActionKind::Topology => "topology",
            ActionKind::Dcs => "dcs",
            ActionKind::Packages => "packages",
            ActionKind::Files => "files",
            ActionKind::Run => "run",
            ActionKind::Restart => "restart",
            ActionKind::Reload => "reload",
            ActionKind::PostgresRestart => "pg restart",
            ActionKind::NoRestart => "no restart",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Action {
    pub kind: ActionKind,
    /// A few words, for tables.
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub why: String,
}

fn action(
    kind: ActionKind,
    summary: impl Into<String>,
    command: Option<String>,
    why: impl Into<String>,
) -> Action {
    Action {
        kind,
        summary: summary.into(),
        command,
        why: why.into(),
    }
}

/// A PostgreSQL parameter whose value changes.
#[derive(Debug, Clone, Serialize)]
pub struct ParamChange {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    /// Its context in PostgreSQL 17 (`postmaster`, `sighup`, `user`, …), when it is a core parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// `restart` (context `postmaster`, or unknown) or `reload`.
    pub applies_on: &'static str,
}

/// A change of a site's dynamic configuration (`bootstrap.dcs`).
#[derive(Debug, Clone, Serialize)]
pub struct DcsChange {
    pub scope: String,
    /// The patch, as YAML: changed keys with their new values, removed keys as `null`.
    pub patch: String,
    /// The command that applies it, on any Patroni member of the site.
    pub command: String,
    /// The whole configuration's replacement, when the build renders it (`clusters/<c>/dcs-<site>.yaml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<String>,
    pub parameters: Vec<ParamChange>,
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The patch that turns `old` into `new` under Patroni's `patch_config`
/// (patroni/patroni `patroni/utils.py`): changed keys with their new value,
/// nested maps recursively, removed keys as `null`, lists replaced whole.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                    Some(ov) => {
                        if let Some(p) = merge_patch(ov, nv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

/// Dotted paths of the leaves that differ.
fn changed_keys(old: &Value, new: &Value, prefix: &str, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                changed_keys(
                    o.get(k).unwrap_or(&Value::Null),
                    n.get(k).unwrap_or(&Value::Null),
                    &path,
                    out,
                );
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn parameter_changes(old: &Value, new: &Value) -> Vec<ParamChange> {
    let (o, n) = (
        old.as_object().cloned().unwrap_or_default(),
        new.as_object().cloned().unwrap_or_default(),
    );
    let names: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let (ov, nv) = (o.get(name), n.get(name));
        if ov.map(scalar_text) == nv.map(scalar_text) {
            continue;
        }
        let context = effects::parameter_context(name);
        out.push(ParamChange {
            name: name.clone(),
            old: ov.map(scalar_text),
            new: nv.map(scalar_text),
            context: context.map(str::to_string),
            applies_on: match context {
                Some("postmaster") | None => "restart",
                Some(_) => "reload",
            },
        });
    }
    out
}

fn param_list(params: &[ParamChange], on: &str) -> String {
    params
        .iter()
        .filter(|p| p.applies_on == on)
        .map(|p| match &p.context {
            Some(c) => format!("{} ({c})", p.name),
            None => format!(
                "{} (not a PostgreSQL 17 parameter: context unknown)",
                p.name
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn yaml_of(bytes: &[u8]) -> Option<Value> {
    serde_yaml::from_slice(bytes).ok()
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).unwrap_or(&Value::Null);
    }
    cur
}

/// A pg host's `patroni.yml`: where it is and what it says.
struct Patroni {
    /// `patronictl -c <patroni.yml>` as the host has them (pip installs
    /// patronictl beside patroni in its venv, off the PATH).
    ctl: String,
    yaml: Value,
}

/// patronictl beside the `patroni` that `patroni.service` starts.
fn patronictl_of(tree: &Tree, host: &str) -> String {
    tree.files
        .get(&format!(
            "hosts/{host}/rootfs/etc/systemd/system/patroni.service"
        ))
        .and_then(|a| {
            let text = String::from_utf8_lossy(&a.bytes).into_owned();
            let start = text.lines().find_map(|l| l.strip_prefix("ExecStart="))?;
            let bin = start.split_whitespace().next()?;
            bin.strip_suffix("/patroni")
                .map(|dir| format!("{dir}/patronictl"))
        })
        .unwrap_or_else(|| "patronictl".into())
}

fn patroni_of(tree: &Tree, host: &str) -> Option<Patroni> {
    let prefix = format!("hosts/{host}/rootfs");
    tree.files
        .iter()
        .filter(|(p, _)| p.starts_with(&prefix) && p.ends_with("/patroni/patroni.yml"))
        .find_map(|(p, a)| {
            Some(Patroni {
                ctl: format!("{} -c {}", patronictl_of(tree, host), &p[prefix.len()..]),
                yaml: yaml_of(&a.bytes)?,
            })
        })
}

/// `KEY=value` lines of an environment file.
fn env_file(tree: &Tree, path: &str) -> BTreeMap<String, String> {
    tree.files
        .get(path)
        .map(|a| {
            String::from_utf8_lossy(&a.bytes)
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn etcd_conf(tree: &Tree, host: &str) -> Option<BTreeMap<String, String>> {
    let path = format!("hosts/{host}/rootfs/etc/etcd/etcd.conf");
    tree.files
        .contains_key(&path)
        .then(|| env_file(tree, &path))
}

/// The host file a rootfs artifact is, or `None`.
fn on_host(path: &str, host: &str) -> Option<String> {
    path.strip_prefix(&format!("hosts/{host}/rootfs"))
        .filter(|p| p.starts_with('/'))
        .map(str::to_string)
}

/// Classifies every host, site and cluster of the report.
pub fn classify(
    report: &mut Report,
    old: &Tree,
    new: &Tree,
    cluster_files: BTreeMap<String, Vec<FileChange>>,
) {
    let mut site_dcs: BTreeMap<(String, String), DcsChange> = BTreeMap::new();
    for h in &mut report.hosts {
        h.actions = match h.status {
            Status::Added => vec![action(
                ActionKind::Topology,
                "install the new host",
                None,
                "a host added to the spec: install it from its kickstart or user-data (see its site's steps)",
            )],
            Status::Removed => vec![action(
                ActionKind::Topology,
                "decommission the host",
                None,
                "a host removed from the spec: take it out of its site first (see its site's steps)",
            )],
            Status::Changed => host_actions(h, old, new, &mut site_dcs),
        };
    }
    // Every site either side knows, with its hosts on each side.
    let mut sites: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    for (tree, is_new) in [(old, false), (new, true)] {
        for host in hosts_of(tree) {
            if let Some(key) = host_meta(tree, &host) {
                let e = sites.entry(key).or_default();
                if is_new {
                    e.1.insert(host)
                } else {
                    e.0.insert(host)
                };
            }
        }
    }
    let mut by_cluster: BTreeMap<String, Vec<SiteReport>> = BTreeMap::new();
    for ((cluster, site), (old_hosts, new_hosts)) in &sites {
        let mut actions = topology(cluster, site, old_hosts, new_hosts, old, new);
        let dcs = site_dcs.remove(&(cluster.clone(), site.clone()));
        if let Some(d) = &dcs {
            actions.push(action(
                ActionKind::Dcs,
                format!("patronictl edit-config (scope {})", d.scope),
                Some(d.command.clone()),
                "bootstrap.dcs is written to the DCS only when the cluster is initialized; a running cluster keeps its dynamic configuration until it is edited. Patroni applies the change on every member at its next loop",
            ));
            let restart = param_list(&d.parameters, "restart");
            if !restart.is_empty() {
                actions.push(action(
                    ActionKind::PostgresRestart,
                    format!("restart PostgreSQL (scope {}): {}", d.scope, names(&d.parameters, "restart")),
                    Some(format!("{} restart {} --pending --force", patronictl(new, new_hosts), d.scope)),
                    format!("{restart}: a restart applies it; Patroni marks every member pending_restart once the DCS change is applied, and `restart --pending` restarts exactly those"),
                ));
            }
            let reload = param_list(&d.parameters, "reload");
            if !reload.is_empty() {
                actions.push(action(
                    ActionKind::NoRestart,
                    names(&d.parameters, "reload"),
                    None,
                    format!("{reload}: Patroni reloads PostgreSQL when it applies the DCS change"),
                ));
            }
        }
        if actions.is_empty() {
            continue;
        }
        actions.sort();
        actions.dedup();
        let scope = [new, old]
            .iter()
            .flat_map(|t| {
                new_hosts
                    .iter()
                    .chain(old_hosts.iter())
                    .map(move |h| (t, h))
            })
            .find_map(|(t, h)| patroni_of(t, h))
            .and_then(|p| p.yaml.get("scope").map(scalar_text));
        by_cluster
            .entry(cluster.clone())
            .or_default()
            .push(SiteReport {
                site: site.clone(),
                scope,
                dcs,
                actions,
            });
    }
    let names: BTreeSet<String> = by_cluster
        .keys()
        .chain(cluster_files.keys())
        .cloned()
        .collect();
    let mut cluster_files = cluster_files;
    for c in names {
        report.clusters.push(ClusterReport {
            files: cluster_files.remove(&c).unwrap_or_default(),
            sites: by_cluster.remove(&c).unwrap_or_default(),
            cluster: c,
        });
    }
}

fn names(params: &[ParamChange], on: &str) -> String {
    params
        .iter()
        .filter(|p| p.applies_on == on)
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn patronictl(tree: &Tree, hosts: &BTreeSet<String>) -> String {
    hosts
        .iter()
        .find_map(|h| patroni_of(tree, h))
        .map(|p| p.ctl)
        .unwrap_or_else(|| "patronictl -c /etc/patroni/patroni.yml".into())
}

fn host_actions(
    h: &HostReport,
    old: &Tree,
    new: &Tree,
    site_dcs: &mut BTreeMap<(String, String), DcsChange>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut installed = Vec::new();
    let mut removed = Vec::new();
    let mut reinstall = Vec::new();
    let mut pxe = Vec::new();
    for f in &h.files {
        if let Some(file) = on_host(&f.path, &h.host) {
            if f.status == Status::Removed {
                removed.push(file.clone());
            } else {
                installed.push(file.clone());
            }
            actions.extend(file_actions(&file, f, h, old, new, site_dcs));
        } else if f.path.ends_with("/rpms.txt") {
            if let Detail::Packages { added, removed } = &f.detail {
                if !added.is_empty() {
                    actions.push(action(
                        ActionKind::Packages,
                        format!("dnf install {}", added.join(" ")),
                        Some(format!("dnf install -y {}", added.join(" "))),
                        "packages added to the host's rpms.txt (a reinstall gets them from the kickstart or user-data)",
                    ));
                }
                if !removed.is_empty() {
                    actions.push(action(
                        ActionKind::Packages,
                        format!("dnf remove {}", removed.join(" ")),
                        Some(format!("dnf remove -y {}", removed.join(" "))),
                        "packages no longer in the host's rpms.txt",
                    ));
                }
            }
        } else if f.path.starts_with("pxe/") {
            pxe.push(format!("{} ({})", f.path, f.status.word()));
        } else if f.path.ends_with("/kickstart.ks") && f.status == Status::Changed {
            reinstall.extend(install_time_changes(&f.path, old, new, Format::Kickstart));
        } else if f.path.ends_with("/user-data") && f.status == Status::Changed {
            reinstall.extend(install_time_changes(&f.path, old, new, Format::UserData));
        }
    }
    if !installed.is_empty() || !removed.is_empty() {
        let mut command = format!(
            "tar --no-overwrite-dir -xpzf overlay.tar.gz -C /   # the new hosts/{}/overlay.tar.gz",
            h.host
        );
        for r in &removed {
            command.push_str(&format!("\nrm -f {r}"));
        }
        let mut files = installed.clone();
        files.extend(removed.iter().map(|r| format!("{r} (removed)")));
        actions.push(action(
            ActionKind::Files,
            format!(
                "install {} changed file{}",
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            ),
            Some(command),
            files.join(", "),
        ));
    }
    if !pxe.is_empty() {
        actions.push(action(
            ActionKind::NoRestart,
            "PXE entries: next network install",
            None,
            format!(
                "{}: read only when the host boots the installer over the network (copy pxe/ to the TFTP root)",
                pxe.join(", ")
            ),
        ));
    }
    if !reinstall.is_empty() {
        let what: BTreeSet<String> = reinstall.into_iter().collect();
        let what: Vec<String> = what.into_iter().collect();
        actions.push(action(
            ActionKind::Reinstall,
            format!("reinstall: {}", what.join(", ")),
            None,
            "the installer (kickstart) and cloud-init (user-data) apply these only when a host is installed or an instance first boots: reinstall the host or replace the instance, or change the running host by hand",
        ));
    }
    actions.sort();
    actions.dedup();
    actions
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Kickstart,
    UserData,
}

/// Reasons a kickstart or user-data change needs a reinstall: its changed
/// lines, less comments, the embedded overlay and its checksum (the files
/// are compared on their own), and packages (compared as `rpms.txt`).
fn install_time_changes(path: &str, old: &Tree, new: &Tree, format: Format) -> Vec<String> {
    let digests = super::diff::overlay_digests(path, (old, new));
    let mut texts = Vec::new();
    for tree in [old, new] {
        let bytes = tree
            .files
            .get(path)
            .map(|a| archive::maybe_gunzip(&a.bytes).unwrap_or_else(|| a.bytes.clone()))
            .unwrap_or_default();
        texts.push(archive::redact(&String::from_utf8_lossy(&bytes)).text);
    }
    let sections = |text: &str| -> Vec<String> {
        let mut section = String::new();
        text.lines()
            .map(|line| match format {
                Format::Kickstart => {
                    let word = line.split_whitespace().next().unwrap_or("");
                    if word.starts_with('%') {
                        section = if word == "%end" {
                            String::new()
                        } else {
                            word.to_string()
                        };
                        "%marker".to_string()
                    } else {
                        section.clone()
                    }
                }
                Format::UserData => {
                    if !line.starts_with([' ', '-', '#'])
                        && let Some((key, _)) = line.split_once(':')
                    {
                        section = key.to_string();
                    }
                    section.clone()
                }
            })
            .collect()
    };
    let (old_sections, new_sections) = (sections(&texts[0]), sections(&texts[1]));
    let diff = similar::TextDiff::from_lines(texts[0].as_str(), texts[1].as_str());
    let mut reasons = Vec::new();
    for change in diff.iter_all_changes() {
        let section = match change.tag() {
            similar::ChangeTag::Equal => continue,
            similar::ChangeTag::Delete => change.old_index().map(|i| &old_sections[i]),
            similar::ChangeTag::Insert => change.new_index().map(|i| &new_sections[i]),
        };
        let line = change.value().trim();
        if line.is_empty()
            || line.starts_with('#')
            || digests.iter().any(|d| line.contains(d.as_str()))
        {
            continue;
        }
        let section = section.map(String::as_str).unwrap_or("");
        let reason = match format {
            Format::Kickstart => match section {
                "%packages" => continue,
                "%marker" => "kickstart sections".to_string(),
                "" => {
                    let word = line.split_whitespace().next().unwrap_or("");
                    effects::KICKSTART_INSTALL_TIME
                        .iter()
                        .find(|(cmd, _)| *cmd == word)
                        .map(|(_, what)| what.to_string())
                        .unwrap_or_else(|| format!("kickstart `{word}`"))
                }
                s => format!("kickstart {s} steps"),
            },
            Format::UserData => match section {
                "packages" => continue,
                s => format!("user-data `{s}`"),
            },
        };
        reasons.push(reason);
    }
    reasons
}

fn file_actions(
    file: &str,
    f: &FileChange,
    h: &HostReport,
    old: &Tree,
    new: &Tree,
    site_dcs: &mut BTreeMap<(String, String), DcsChange>,
) -> Vec<Action> {
    if file.ends_with("/patroni/patroni.yml") && f.status == Status::Changed {
        return patroni_actions(h, old, new, site_dcs);
    }
    if file == "/etc/etcd/etcd.conf" && f.status == Status::Changed {
        let path = format!("hosts/{}/rootfs{file}", h.host);
        let (o, n) = (env_file(old, &path), env_file(new, &path));
        let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
        let changed: Vec<&String> = keys
            .into_iter()
            .filter(|k| o.get(*k) != n.get(*k))
            .collect();
        if !changed.is_empty()
            && changed
                .iter()
                .all(|k| effects::ETCD_BOOTSTRAP_ONLY.contains(&k.as_str()))
        {
            return vec![action(
                ActionKind::NoRestart,
                "etcd.conf: bootstrap keys only",
                None,
                format!(
                    "only {} changed: etcd ignores the initial-cluster settings once a member has data",
                    changed
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )];
        }
    }
    let Some(rule) = effects::file_rule(file) else {
        return vec![action(
            ActionKind::NoRestart,
            format!("check {file} by hand"),
            None,
            "no rule says which service reads this file",
        )];
    };
    let unit = |u: &str| Some(u.to_string());
    let (kind, summary, command) = match rule.effect {
        Effect::Reload(u) => (
            ActionKind::Reload,
            format!("reload {u}"),
            unit(&format!("systemctl reload {u}")),
        ),
        Effect::Restart(u) => (
            ActionKind::Restart,
            format!("restart {u}"),
            unit(&format!("systemctl restart {u}")),
        ),
        Effect::UnitFile => {
            let name = file.rsplit('/').next().unwrap_or(file);
            if f.status == Status::Removed {
                (
                    ActionKind::Run,
                    format!("disable {name}"),
                    unit(&format!(
                        "systemctl disable --now {name} && systemctl daemon-reload"
                    )),
                )
            } else {
                (
                    ActionKind::Restart,
                    format!("daemon-reload, restart {name}"),
                    unit(&format!(
                        "systemctl daemon-reload && systemctl restart {name}"
                    )),
                )
            }
        }
        Effect::Run(cmd) => (
            ActionKind::Run,
            format!("run {}", cmd.split(',').next().unwrap_or(cmd)),
            unit(cmd),
        ),
        Effect::Nothing => (ActionKind::NoRestart, file.to_string(), None),
    };
    vec![action(kind, summary, command, rule.why)]
}

fn patroni_actions(
    h: &HostReport,
    old: &Tree,
    new: &Tree,
    site_dcs: &mut BTreeMap<(String, String), DcsChange>,
) -> Vec<Action> {
    let (Some(o), Some(n)) = (patroni_of(old, &h.host), patroni_of(new, &h.host)) else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    let scope = n.yaml.get("scope").map(scalar_text).unwrap_or_default();
    let member = n
        .yaml
        .get("name")
        .map(scalar_text)
        .unwrap_or_else(|| h.host.clone());
    let (od, nd) = (
        at(&o.yaml, &["bootstrap", "dcs"]),
        at(&n.yaml, &["bootstrap", "dcs"]),
    );
    if let Some(patch) = merge_patch(od, nd) {
        let key = (h.cluster.clone(), h.site.clone());
        site_dcs.entry(key).or_insert_with(|| {
            let patch_yaml = crate::render::yaml::to_yaml(&patch);
            let replace_file = format!("clusters/{}/dcs-{}.yaml", h.cluster, h.site);
            DcsChange {
                command: format!(
                    "{} edit-config {scope} --apply - --force <<'EOF'\n{patch_yaml}EOF",
                    n.ctl
                ),
                replace: new.files.contains_key(&replace_file).then(|| {
                    format!(
                        "{} edit-config {scope} --replace dcs-{}.yaml --force   # {replace_file}, copied to the member",
                        n.ctl, h.site
                    )
                }),
                patch: patch_yaml,
                parameters: parameter_changes(
                    at(od, &["postgresql", "parameters"]),
                    at(nd, &["postgresql", "parameters"]),
                ),
                scope: scope.clone(),
            }
        });
    }
    let (mut ob, mut nb) = (o.yaml.clone(), n.yaml.clone());
    for v in [&mut ob, &mut nb] {
        if let Some(b) = v.get_mut("bootstrap").and_then(Value::as_object_mut) {
            b.remove("dcs");
        }
    }
    let (ol, nl) = (strip(&ob, "bootstrap"), strip(&nb, "bootstrap"));
    let mut bootstrap_keys = Vec::new();
    changed_keys(
        at(&ob, &["bootstrap"]),
        at(&nb, &["bootstrap"]),
        "bootstrap",
        &mut bootstrap_keys,
    );
    if !bootstrap_keys.is_empty() {
        actions.push(action(
            ActionKind::NoRestart,
            "patroni.yml: bootstrap settings of new clusters only",
            None,
            format!(
                "{} change: Patroni uses it only to initialize a new cluster",
                bootstrap_keys.join(", ")
            ),
        ));
    }
    let mut local = Vec::new();
    changed_keys(&ol, &nl, "", &mut local);
    if !local.is_empty() {
        actions.push(action(
            ActionKind::Reload,
            "reload patroni.service",
            Some("systemctl reload patroni.service".into()),
            format!(
                "patroni.yml changed ({}); Patroni re-reads it on SIGHUP",
                local.join(", ")
            ),
        ));
        let params = parameter_changes(
            at(&ol, &["postgresql", "parameters"]),
            at(&nl, &["postgresql", "parameters"]),
        );
        let listen = at(&ol, &["postgresql", "listen"]) != at(&nl, &["postgresql", "listen"]);
        let restart = param_list(&params, "restart");
        if !restart.is_empty() || listen {
            let mut what = restart.clone();
            if listen {
                if !what.is_empty() {
                    what.push_str(", ");
                }
                what.push_str(
                    "postgresql.listen (listen_addresses and port are postmaster parameters)",
                );
            }
            actions.push(action(
                ActionKind::PostgresRestart,
                format!("restart PostgreSQL of {member}"),
                Some(format!(
                    "{} restart {scope} {member} --pending --force",
                    n.ctl
                )),
                format!("{what}: Patroni marks the member pending_restart after the reload"),
            ));
        }
    } else if bootstrap_keys.is_empty() {
        actions.push(action(
            ActionKind::NoRestart,
            "patroni.yml: bootstrap.dcs only",
            None,
            format!("a running cluster ignores bootstrap.dcs: apply the DCS change of scope {scope} instead"),
        ));
    }
    actions
}

fn strip(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove(key);
    }
    v
}

fn standby_slot(tree: &Tree, hosts: &BTreeSet<String>) -> Option<String> {
    hosts.iter().find_map(|h| {
        let p = patroni_of(tree, h)?;
        at(
            &p.yaml,
            &["bootstrap", "dcs", "standby_cluster", "primary_slot_name"],
        )
        .as_str()
        .map(str::to_string)
    })
}

/// The scope whose dynamic configuration lists a permanent slot of that name.
fn slot_owner(tree: &Tree, slot: &str) -> Option<String> {
    hosts_of(tree).into_iter().find_map(|h| {
        let p = patroni_of(tree, &h)?;
        at(&p.yaml, &["bootstrap", "dcs", "slots", slot])
            .is_object()
            .then(|| p.yaml.get("scope").map(scalar_text))
            .flatten()
    })
}

/// Members and sites added or removed, with their procedures.
fn topology(
    cluster: &str,
    site: &str,
    old_hosts: &BTreeSet<String>,
    new_hosts: &BTreeSet<String>,
    old: &Tree,
    new: &Tree,
) -> Vec<Action> {
    let mut out = Vec::new();
    let added: Vec<&String> = new_hosts.difference(old_hosts).collect();
    let removed: Vec<&String> = old_hosts.difference(new_hosts).collect();
    if old_hosts.is_empty() {
        let hosts = new_hosts.iter().cloned().collect::<Vec<_>>().join(", ");
        match standby_slot(new, new_hosts) {
            Some(slot) => {
                let source = slot_owner(new, &slot).unwrap_or_else(|| "its source".into());
                out.push(action(
                    ActionKind::Topology,
                    format!("DR site {site} added: slot {slot} on {source} first"),
                    Some(format!(
                        "# 1. on a member of scope {source}: apply its DCS change above (it adds the permanent slot `{slot}`)\n\
                         # 2. on the leader of {source}, check that Patroni created it:\n\
                         psql -U postgres -c \"SELECT slot_name, slot_type, active FROM pg_replication_slots WHERE slot_name = '{slot}'\"\n\
                         # 3. reload patroni.service on the members of {source} (their pg_hba admits the DR hosts)\n\
                         # 4. install the hosts of site {site}: {hosts}"
                    )),
                    format!(
                        "the standby cluster of site {site} streams from {source} through the permanent slot `{slot}`; a running cluster reads its permanent slots only from the DCS, so the slot exists only once the DCS change is applied"
                    ),
                ));
            }
            None => out.push(action(
                ActionKind::Topology,
                format!("site {site} added"),
                None,
                format!(
                    "install its hosts ({hosts}); its etcd and Patroni cluster bootstrap as new"
                ),
            )),
        }
        return out;
    }
    if new_hosts.is_empty() {
        let why = match standby_slot(old, old_hosts) {
            Some(slot) => format!(
                "a DR site removed: once its hosts are stopped, the source drops the permanent slot `{slot}` when its DCS change (`slots: {{{slot}: null}}`) is applied, so WAL is no longer kept for it"
            ),
            None => {
                format!("site {site} of cluster {cluster} removed: stop and decommission its hosts")
            }
        };
        out.push(action(
            ActionKind::Topology,
            format!("site {site} removed"),
            None,
            why,
        ));
        return out;
    }
    // Members that stay, to run etcdctl against.
    let endpoint = old_hosts
        .intersection(new_hosts)
        .find_map(|h| {
            etcd_conf(new, h)?
                .get("ETCD_ADVERTISE_CLIENT_URLS")
                .cloned()
        })
        .map(|u| u.split(',').next().unwrap_or("").to_string())
        .unwrap_or_else(|| "<a remaining member>".into());
    for h in added {
        if let Some(conf) = etcd_conf(new, h) {
            let name = conf.get("ETCD_NAME").cloned().unwrap_or_else(|| h.clone());
            let peer = conf
                .get("ETCD_INITIAL_ADVERTISE_PEER_URLS")
                .cloned()
                .unwrap_or_default();
            let state = conf
                .get("ETCD_INITIAL_CLUSTER_STATE")
                .cloned()
                .unwrap_or_default();
            let mut command =
                format!("etcdctl --endpoints={endpoint} member add {name} --peer-urls={peer}");
            if state != "existing" {
                command.push_str(&format!(
                    "\n# on {h}, before etcd first starts: its etcd.conf says ETCD_INITIAL_CLUSTER_STATE={state}\nsed -i 's/^ETCD_INITIAL_CLUSTER_STATE=.*/ETCD_INITIAL_CLUSTER_STATE=existing/' /etc/etcd/etcd.conf"
                ));
            }
            out.push(action(
                ActionKind::Topology,
                format!("etcd member {name} added"),
                Some(command),
                "an etcd member joins a running cluster only after `member add`, and starts with initial-cluster-state `existing`; add one member at a time",
            ));
        }
        if patroni_of(new, h).is_some() {
            out.push(action(
                ActionKind::Topology,
                format!("Patroni member {h} added"),
                None,
                "install the host: Patroni creates the replica with its create_replica_methods; the other members' patroni.yml (pg_hba) change too, see their reloads",
            ));
        }
    }
    for h in removed {
        if patroni_of(old, h).is_some() {
            out.push(action(
                ActionKind::Topology,
                format!("Patroni member {h} removed"),
                Some(format!("{ctl} list   # if {h} is the leader: {ctl} switchover first\nsystemctl disable --now patroni.service   # on {h}", ctl = patronictl(new, new_hosts))),
                "stop Patroni on the member; its key in the DCS expires after ttl",
            ));
        }
        if let Some(conf) = etcd_conf(old, h) {
            let name = conf.get("ETCD_NAME").cloned().unwrap_or_else(|| h.clone());
            out.push(action(
                ActionKind::Topology,
                format!("etcd member {name} removed"),
                Some(format!(
                    "etcdctl --endpoints={endpoint} member list   # the ID of {name}\netcdctl --endpoints={endpoint} member remove <ID>\nsystemctl disable --now etcd.service   # on {h}"
                )),
                "remove the member from the etcd cluster before stopping it, so the quorum is counted without it",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_changes_and_nulls_removals() {
        let old = json!({"ttl": 30, "loop_wait": 10, "slots": {"a": {"type": "physical"}}, "postgresql": {"parameters": {"x": 1, "y": 2}}});
        let new = json!({"ttl": 40, "loop_wait": 10, "postgresql": {"parameters": {"x": 1, "y": 3, "z": "on"}}});
        assert_eq!(
            merge_patch(&old, &new),
            Some(
                json!({"ttl": 40, "postgresql": {"parameters": {"y": 3, "z": "on"}}, "slots": null})
            )
        );
        assert_eq!(merge_patch(&old, &old), None);
    }

    #[test]
    fn parameters_are_classified_by_their_context() {
        let p = parameter_changes(
            &json!({"shared_buffers": "1GB", "work_mem": "4MB"}),
            &json!({"shared_buffers": "2GB", "work_mem": "8MB", "pg_stat_statements.max": 1000}),
        );
        let by: BTreeMap<&str, &str> = p.iter().map(|c| (c.name.as_str(), c.applies_on)).collect();
        assert_eq!(by["shared_buffers"], "restart");
        assert_eq!(by["work_mem"], "reload");
        assert_eq!(by["pg_stat_statements.max"], "restart");
    }
}

#[cfg(test)]
mod replace_tests {
    use super::super::diff::{Tree, compare};
    use crate::render::Artifact;

    fn tree(ttl: u32, with_dcs_file: bool) -> Tree {
        let mut files = std::collections::BTreeMap::new();
        let mut add = |p: &str, text: String| {
            files.insert(
                p.to_string(),
                Artifact {
                    bytes: text.into_bytes(),
                    mode: 0o644,
                },
            );
        };
        add(
            "hosts/db1/kickstart.ks",
            "# Kickstart for db1 (cluster c1, site s1), generated by pgimg\n".into(),
        );
        add(
            "hosts/db1/rootfs/etc/patroni/patroni.yml",
            format!("scope: 'c1'\nname: 'db1'\nbootstrap:\n  dcs:\n    ttl: {ttl}\n"),
        );
        if with_dcs_file {
            add("clusters/c1/dcs-s1.yaml", format!("ttl: {ttl}\n"));
        }
        Tree {
            label: format!("ttl {ttl}"),
            files,
        }
    }

    #[test]
    fn a_rendered_dcs_file_gets_its_replace_form() {
        let r = compare(&tree(30, true), &tree(40, true));
        let dcs = r.clusters[0].sites[0].dcs.as_ref().expect("a DCS change");
        assert_eq!(dcs.patch, "ttl: 40\n");
        assert_eq!(
            dcs.replace.as_deref(),
            Some(
                "patronictl -c /etc/patroni/patroni.yml edit-config c1 --replace dcs-s1.yaml --force   # clusters/c1/dcs-s1.yaml, copied to the member"
            )
        );
        let r = compare(&tree(30, false), &tree(40, false));
        assert!(
            r.clusters[0].sites[0]
                .dcs
                .as_ref()
                .unwrap()
                .replace
                .is_none()
        );
    }
}
