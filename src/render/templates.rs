//! Roles as data: `roles/<role>/role.yaml` says what a role installs,
//! enables, opens and renders; its `*.hbs` files are the templates.
//!
//! The role tree is embedded in the binary at compile time; `--roles DIR`
//! replaces it with a user's own tree. Handlebars runs in strict mode (a
//! missing variable is an error, never an empty string) with HTML escaping
//! off, because nothing rendered here is HTML.

use std::collections::BTreeMap;

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde::Deserialize;

use crate::Error;
use crate::load::RoleTree;

/// One role's `role.yaml`. String fields are handlebars templates rendered with the host's context;
/// `when`/`unless` name a dotted path into that context (`site.is_dr`) that must be truthy/falsy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
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
}

/// Something that applies only under a condition.
pub trait Guarded {
    fn when(&self) -> Option<&str>;
    fn unless(&self) -> Option<&str>;

    fn applies(&self, ctx: &serde_json::Value) -> bool {
        self.when().is_none_or(|w| truthy(ctx, w)) && self.unless().is_none_or(|u| !truthy(ctx, u))
    }
}

macro_rules! guarded {
    ($t:ty) => {
        impl Guarded for $t {
            fn when(&self) -> Option<&str> {
                self.when.as_deref()
            }
            fn unless(&self) -> Option<&str> {
                self.unless.as_deref()
            }
        }
    };
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
    pub port: String,
    #[serde(default = "tcp")]
    pub proto: String,
    pub service: String,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDef {
    /// A template of the role, or `builtin:<name>` for a file serialized from typed structs.
    pub template: String,
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: String,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
}

guarded!(NameDef);
guarded!(PortDef);
guarded!(DirDef);
guarded!(FileDef);

/// The roles every host gets, then one per spec role, then site-level ones.
pub const ROLE_NAMES: &[&str] = &["common", "etcd", "pg", "haproxy", "dr"];

/// Compiled templates and role definitions.
pub struct Roles {
    pub registry: Handlebars<'static>,
    pub defs: BTreeMap<String, RoleDef>,
}

impl Roles {
    pub fn compile(tree: &RoleTree) -> Result<Self, Error> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.set_prevent_indent(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("root", Box::new(root_helper));
        registry.register_helper("join", Box::new(join_helper));
        let mut defs = BTreeMap::new();
        for (path, bytes) in &tree.files {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Error::Template(format!("roles/{path}: not UTF-8")))?;
            if let Some(role) = path.strip_suffix("/role.yaml") {
                let def: RoleDef = serde_yaml::from_str(text)
                    .map_err(|e| Error::Template(format!("roles/{path}: {e}")))?;
                defs.insert(role.to_string(), def);
            } else if path.ends_with(".hbs") {
                registry
                    .register_template_string(path, text)
                    .map_err(|e| Error::Template(format!("roles/{path}: {e}")))?;
            }
        }
        // role.yaml strings are templates too; compiling them once here keeps
        // parsing out of the per-host loop and reports syntax errors up front.
        for (role, def) in &defs {
            let strings = (def.packages.iter().map(|p| &p.name))
                .chain(def.units.iter().map(|u| &u.name))
                .chain(def.ports.iter().map(|p| &p.port))
                .chain(def.dirs.iter().map(|d| &d.path))
                .chain(def.files.iter().map(|f| &f.path));
            for t in strings.filter(|t| t.contains("{{")) {
                registry
                    .register_template_string(&inline_name(t), t)
                    .map_err(|e| Error::Template(format!("roles/{role}/role.yaml: {e}")))?;
            }
        }
        for name in ROLE_NAMES {
            if !defs.contains_key(*name) {
                return Err(Error::Template(format!(
                    "roles/{name}/role.yaml is missing"
                )));
            }
        }
        Ok(Roles { registry, defs })
    }

    /// Renders an inline template string (a `role.yaml` field), compiled by `compile`.
    /// Takes a prepared `Context` because handlebars would otherwise copy the
    /// whole JSON context on every call.
    pub fn render_str(&self, what: &str, template: &str, ctx: &Context) -> Result<String, Error> {
        if !template.contains("{{") {
            return Ok(template.to_string());
        }
        let name = inline_name(template);
        let rendered = if self.registry.has_template(&name) {
            self.registry.render_with_context(&name, ctx)
        } else {
            self.registry.render_template_with_context(template, ctx)
        };
        rendered
            .map(shrunk)
            .map_err(|e| Error::Template(format!("{what}: {e}")))
    }

    pub fn render_file(&self, name: &str, ctx: &serde_json::Value) -> Result<String, Error> {
        self.registry
            .render(name, ctx)
            .map(shrunk)
            .map_err(|e| Error::Template(format!("roles/{name}: {}", describe(&e))))
    }

    /// `render_file` with a prepared `Context`, for many files of one host.
    pub fn render_file_with(&self, name: &str, ctx: &Context) -> Result<String, Error> {
        self.registry
            .render_with_context(name, ctx)
            .map(shrunk)
            .map_err(|e| Error::Template(format!("roles/{name}: {}", describe(&e))))
    }
}

/// Handlebars renders into an 8 KiB buffer; a build keeps every rendered file
/// until it is written, so the slack would be most of its memory.
fn shrunk(mut s: String) -> String {
    s.shrink_to_fit();
    s
}

/// The registry name of an inline `role.yaml` template: its text, which no file path can be.
fn inline_name(template: &str) -> String {
    format!("inline:{template}")
}

fn describe(e: &handlebars::RenderError) -> String {
    match (e.line_no, e.column_no) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: {}", e.reason()),
        _ => e.reason().to_string(),
    }
}

/// `{{root "/etc/x"}}`: the path as it is on the target (prefixed by the lab's per-host root in a lab build).
fn root_helper(
    h: &Helper,
    _: &Handlebars,
    ctx: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let path = h
        .param(0)
        .and_then(|p| p.value().as_str())
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex("root", 0))?;
    let prefix = ctx
        .data()
        .get("root")
        .and_then(|r| r.as_str())
        .unwrap_or("");
    out.write(prefix)?;
    out.write(path)?;
    Ok(())
}

/// `{{join list "sep"}}` for lists of strings.
fn join_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let list = h
        .param(0)
        .and_then(|p| p.value().as_array())
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex("join", 0))?;
    let sep = h.param(1).and_then(|p| p.value().as_str()).unwrap_or(",");
    let parts: Vec<String> = list
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .collect();
    out.write(&parts.join(sep))?;
    Ok(())
}

/// Looks up a dotted path (`site.is_dr`) and tells whether it is truthy.
pub fn truthy(ctx: &serde_json::Value, path: &str) -> bool {
    let mut v = ctx;
    for part in path.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return false,
        }
    }
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::String(s) => !s.is_empty(),
        _ => true,
    }
}
