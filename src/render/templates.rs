//! The template engine: every `*.hbs` of the role tree (`roles/<role>/…`
//! and `kickstart/…`), compiled once per build. Handlebars runs in strict mode (a
//! missing variable is an error, never an empty string) with HTML escaping
//! off, because nothing rendered here is HTML.

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};

use crate::Error;
use crate::load::RoleTree;

/// The role tree's templates (`*.hbs`), compiled once per build.
pub struct Templates {
    pub registry: Handlebars<'static>,
}

impl Templates {
    pub fn compile(tree: &RoleTree) -> Result<Self, Error> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.set_prevent_indent(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("root", Box::new(root_helper));
        registry.register_helper("join", Box::new(join_helper));
        for (path, bytes) in &tree.files {
            if !path.ends_with(".hbs") {
                continue;
            }
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Error::Template(format!("roles/{path}: not UTF-8")))?;
            registry
                .register_template_string(path, text)
                .map_err(|e| Error::Template(format!("roles/{path}: {e}")))?;
        }
        Ok(Templates { registry })
    }

    pub fn render_file(&self, name: &str, ctx: &impl serde::Serialize) -> Result<String, Error> {
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
