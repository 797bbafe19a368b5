//! Roles as data: `roles/<role>/role.yaml` says which hosts get the role and
//! what it installs, enables, opens, creates, renders and runs; its `*.hbs`
//! files are the templates (`render::templates`).
//!
//! `role.yaml` strings may name context values as `{{path.to.value}}`; a
//! whole-string reference to a list expands to one entry per element
//! (`"{{pg.extra_packages}}"`). `when:`/`unless:` name a boolean of the
//! context. Both are strict: a path the context does not have is an error
//! that names the role file, never an empty string or a silent `false`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::Error;
use crate::load::RoleTree;

impl RoleDef {
    /// Whether the role brings anything to a host (else it only has cluster files).
    pub fn is_host_role(&self) -> bool {
        !(self.packages.is_empty()
            && self.units.is_empty()
            && self.ports.is_empty()
            && self.dirs.is_empty()
            && self.files.is_empty()
            && self.services.is_empty()
            && self.binaries.is_empty())
    }
}

/// One role's `role.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    /// The hosts that get the role: a boolean of the host's context
    /// (`host.is_pg`, `site.is_dr`); every host when absent.
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
    #[serde(default)]
    pub packages: Vec<NameDef>,
    #[serde(default)]
    pub units: Vec<NameDef>,
    #[serde(default)]
    pub ports: Vec<PortDef>,
    #[serde(default)]
    pub dirs: Vec<DirDef>,
    #[serde(default)]
    pub files: Vec<FileDef>,
    /// The daemons the role runs, as its units start them: what the lab starts.
    #[serde(default)]
    pub services: Vec<ServiceDef>,
    /// Programs the role's packages install, where the rendered files call them.
    #[serde(default)]
    pub binaries: Vec<BinaryDef>,
    /// Files rendered once per cluster (`clusters/<cluster>/<path>`).
    #[serde(default)]
    pub cluster_files: Vec<ClusterFileDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameDef {
    pub name: String,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortDef {
    /// The port; absent for a protocol without ports (`proto: vrrp`).
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default = "tcp")]
    pub proto: String,
    pub service: String,
    /// The setting that chooses the port (`postgresql/port`): where a
    /// diagnostic about the port points.
    #[serde(default)]
    pub setting: Option<String>,
    /// Who may connect: context values that are lists of addresses or
    /// networks (`"{{firewall.members}}"`). The firewall opens the port to
    /// these sources only.
    #[serde(default)]
    pub from: Vec<String>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirDef {
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: String,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
}

/// A file of the host's root file system and what produces its bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDef {
    /// A template of the role (`patroni.service.hbs`) …
    #[serde(default)]
    pub template: Option<String>,
    /// … or a file serialized from typed structs (`patroni`).
    #[serde(default)]
    pub typed: Option<TypedFile>,
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: String,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
}

/// The files pgimg serializes from typed structs instead of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypedFile {
    /// `patroni.yml` (`render::patroni`).
    Patroni,
}

/// A daemon of the role. `exec` and `environment_files` are what its unit's
/// `ExecStart=` and `EnvironmentFile=` say; a test holds the two equal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDef {
    pub name: String,
    pub unit: String,
    pub user: String,
    pub exec: Vec<String>,
    #[serde(default)]
    pub environment_files: Vec<String>,
    /// `KEY=value`, as `Environment=` lines.
    #[serde(default)]
    pub environment: Vec<String>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
}

/// A program at its path on the host, and the tool it is (`etcd`, `psql`,
/// `pg-bindir` for a directory of PostgreSQL programs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryDef {
    pub path: String,
    pub tool: String,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
}

/// A cluster-level file: once per cluster, or once per DR site (`per: dr_site`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFileDef {
    pub template: String,
    pub path: String,
    pub mode: String,
    #[serde(default)]
    pub per: Per,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    #[default]
    Cluster,
    DrSite,
}

/// Something that applies only under a condition of the host's context.
pub trait Guarded {
    fn when(&self) -> Option<&str>;
    fn unless(&self) -> Option<&str>;

    /// Whether it applies; a guard naming a path the context lacks, or a
    /// value that is not a boolean, is an error.
    fn applies(&self, ctx: &Value, what: &str) -> Result<bool, Error> {
        let when = match self.when() {
            Some(w) => flag(ctx, w, what)?,
            None => true,
        };
        let unless = match self.unless() {
            Some(u) => flag(ctx, u, what)?,
            None => false,
        };
        Ok(when && !unless)
    }
}

macro_rules! guarded {
    ($($t:ty),*) => {$(
        impl Guarded for $t {
            fn when(&self) -> Option<&str> {
                self.when.as_deref()
            }
            fn unless(&self) -> Option<&str> {
                self.unless.as_deref()
            }
        }
    )*};
}
guarded!(
    RoleDef, NameDef, PortDef, DirDef, FileDef, ServiceDef, BinaryDef
);

fn lookup<'a>(ctx: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(ctx, |v, part| v.get(part))
}

fn flag(ctx: &Value, path: &str, what: &str) -> Result<bool, Error> {
    match lookup(ctx, path) {
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::Template(format!(
            "{what}: guard `{path}` is not a boolean of the host context (it is `{other}`)"
        ))),
        None => Err(Error::Template(format!(
            "{what}: guard `{path}` names nothing in the host context"
        ))),
    }
}

/// Expands a `role.yaml` string against the host's context: `{{a.b}}`
/// references are replaced by their values; a string that is exactly one
/// reference to a list gives one entry per element.
pub fn expand(template: &str, ctx: &Value, what: &str) -> Result<Vec<String>, Error> {
    let scalar = |v: &Value, path: &str| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(Error::Template(format!(
            "{what}: `{{{{{path}}}}}` is `{other}`, not a string or a number"
        ))),
    };
    let whole = template
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .filter(|t| !t.contains('{') && !t.contains('}'));
    if let Some(path) = whole {
        let path = path.trim();
        let v = lookup(ctx, path).ok_or_else(|| unknown(what, path))?;
        return match v {
            Value::Array(items) => items.iter().map(|i| scalar(i, path)).collect(),
            v => Ok(vec![scalar(v, path)?]),
        };
    }
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| Error::Template(format!("{what}: `{{{{` without `}}}}`")))?;
        let path = rest[start + 2..start + end].trim();
        let v = lookup(ctx, path).ok_or_else(|| unknown(what, path))?;
        out.push_str(&scalar(v, path)?);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(vec![out])
}

fn unknown(what: &str, path: &str) -> Error {
    Error::Template(format!(
        "{what}: `{{{{{path}}}}}` names nothing in the host context"
    ))
}

/// Expands a string that must give exactly one value.
pub fn expand_one(template: &str, ctx: &Value, what: &str) -> Result<String, Error> {
    let mut v = expand(template, ctx, what)?;
    match v.len() {
        1 => Ok(v.remove(0)),
        n => Err(Error::Template(format!(
            "{what}: `{template}` gives {n} values where one is needed"
        ))),
    }
}

/// Every role definition of a role tree, by role name (the directory).
#[derive(Debug, Clone)]
pub struct RoleDefs {
    pub defs: BTreeMap<String, RoleDef>,
}

impl RoleDefs {
    pub fn parse(tree: &RoleTree) -> Result<Self, Error> {
        let mut defs = BTreeMap::new();
        for (path, bytes) in &tree.files {
            let Some(role) = path.strip_suffix("/role.yaml") else {
                continue;
            };
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Error::Template(format!("roles/{path}: not UTF-8")))?;
            let def: RoleDef = serde_yaml::from_str(text)
                .map_err(|e| Error::Template(format!("roles/{path}: {e}")))?;
            for p in &def.ports {
                let known = matches!(p.proto.as_str(), "tcp" | "udp" | "sctp" | "dccp");
                let name_ok = !p.proto.is_empty()
                    && p.proto
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if p.port.is_some() != known || !name_ok {
                    return Err(Error::Template(format!(
                        "roles/{path}: port `{}` needs a `port` with a protocol of tcp, udp, sctp or dccp, \
                         or no `port` with another protocol (`proto: vrrp`)",
                        p.service
                    )));
                }
            }
            for f in &def.files {
                if f.template.is_some() == f.typed.is_some() {
                    return Err(Error::Template(format!(
                        "roles/{path}: file `{}` needs exactly one of `template` and `typed`",
                        f.path
                    )));
                }
            }
            defs.insert(role.to_string(), def);
        }
        if defs.is_empty() {
            return Err(Error::Template(
                "the role tree has no `<role>/role.yaml`".into(),
            ));
        }
        Ok(RoleDefs { defs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expand_replaces_references_and_spreads_lists() {
        let ctx = json!({"pg": {"major": 17, "extra": ["a", "b"], "name": "x"}});
        assert_eq!(
            expand("postgresql{{pg.major}}-server", &ctx, "t").unwrap(),
            ["postgresql17-server"]
        );
        assert_eq!(expand("{{pg.extra}}", &ctx, "t").unwrap(), ["a", "b"]);
        assert_eq!(expand("plain", &ctx, "t").unwrap(), ["plain"]);
        let e = expand("{{pg.nmae}}", &ctx, "roles/pg/role.yaml").unwrap_err();
        assert!(e.to_string().contains("pg.nmae"), "{e}");
    }

    #[test]
    fn a_guard_naming_an_unknown_flag_is_an_error() {
        let ctx = json!({"site": {"is_dr": true, "name": "x"}});
        let d = NameDef {
            name: "n".into(),
            when: Some("site.is_dr".into()),
            unless: None,
        };
        assert!(d.applies(&ctx, "t").unwrap());
        let typo = NameDef {
            when: Some("site.is_dt".into()),
            ..d.clone()
        };
        assert!(typo.applies(&ctx, "t").is_err());
        let not_bool = NameDef {
            when: Some("site.name".into()),
            ..d
        };
        assert!(not_bool.applies(&ctx, "t").is_err());
    }
}
