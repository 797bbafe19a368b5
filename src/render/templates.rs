//! The template engine: every `*.hbs` of the role tree (`roles/<role>/…`
//! and `kickstart/…`), compiled once per build. Handlebars runs in strict mode (a
//! missing variable is an error, never an empty string) with HTML escaping
//! off, because nothing rendered here is HTML.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

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
        check_partials(tree)?;
        Ok(Templates { registry })
    }

    /// The compiled templates of `tree`, compiled once in this process for
    /// the tree last asked for: `pgimg build` has them compiled on a spare
    /// core while it validates the spec ([`compile_ahead`]), and the build
    /// then waits for that compilation instead of doing it again. Compiling
    /// is about 15 ms of one core, a tenth of a one-host rebuild's time.
    pub fn shared(tree: &RoleTree) -> Result<Arc<Templates>, Error> {
        type Slot = Arc<OnceLock<Result<Arc<Templates>, String>>>;
        static LAST: Mutex<Option<(String, Slot)>> = Mutex::new(None);
        let digest = tree.digest();
        let slot = {
            let mut last = LAST
                .lock()
                .map_err(|_| Error::Invariant("a compiling thread panicked".into()))?;
            match &*last {
                Some((known, slot)) if *known == digest => slot.clone(),
                _ => {
                    let slot = Slot::default();
                    *last = Some((digest, slot.clone()));
                    slot
                }
            }
        };
        slot.get_or_init(|| {
            Templates::compile(tree)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Error::Template)
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

/// Starts compiling `tree`'s templates on a thread of their own, for a
/// later [`Templates::shared`]; an error is reported by that call. The
/// thread first runs `first`, work the caller needs sooner than them, then
/// gives way ([`give_way`]) to compile them.
pub fn compile_ahead(tree: RoleTree, first: impl FnOnce() + Send + 'static) {
    // Without a thread the build does both itself when it needs them.
    let _ = std::thread::Builder::new()
        .name("templates".into())
        .spawn(move || {
            first();
            give_way();
            Templates::shared(&tree)
        });
}

/// Lowers the calling thread's priority: what it compiles is needed only
/// once validation ends, and validation itself, with the thread it waits
/// for (the secrets read beside the semantic checks), should have the
/// cores first. On Linux the nice value is a thread's own (setpriority(2),
/// "Bugs"); where it cannot be changed, the thread runs as it is.
fn give_way() {
    use rustix::process::{getpriority_process, setpriority_process};
    if let Ok(nice) = getpriority_process(None) {
        let _ = setpriority_process(Some(rustix::thread::gettid()), (nice + 10).min(19));
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
/// How deep partials may include partials: a role tree needs a few levels.
pub const MAX_PARTIAL_DEPTH: usize = 16;

/// The partials a template includes (`{{> name}}`, `{{#> name}}`, with or
/// without `~`), as written; `None` for one whose name is computed.
fn partial_refs(text: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        rest = &rest[i + 2..];
        let t = rest.trim_start_matches('~').trim_start();
        let t = t.strip_prefix('#').unwrap_or(t).trim_start();
        let Some(t) = t.strip_prefix('>') else {
            continue;
        };
        let t = t.trim_start();
        let name: String = t
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, '}' | '~' | '"' | '\'' | '('))
            .collect();
        out.push((!name.is_empty() && !t.starts_with('(')).then_some(name));
    }
    out
}

/// Every partial a role template includes is another template file of the
/// tree, and no chain of inclusions loops or runs deeper than
/// [`MAX_PARTIAL_DEPTH`]: handlebars expands partials by recursion, so a
/// template that includes itself would overflow the stack.
fn check_partials(tree: &RoleTree) -> Result<(), Error> {
    let mut graph: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (path, bytes) in &tree.files {
        if !path.ends_with(".hbs") {
            continue;
        }
        let text = String::from_utf8_lossy(bytes);
        let mut refs = Vec::new();
        for r in partial_refs(&text) {
            match r {
                Some(name) if tree.files.contains_key(&name) && name.ends_with(".hbs") => {
                    refs.push(name)
                }
                Some(name) => {
                    return Err(Error::Template(format!(
                        "roles/{path}: includes `{name}`, which is not a template file of the role tree"
                    )));
                }
                None => {
                    return Err(Error::Template(format!(
                        "roles/{path}: includes a partial by a computed name; name the template file"
                    )));
                }
            }
        }
        graph.insert(path.as_str(), refs);
    }
    // Depth-first with the chain so far (a name already on it is a loop) and
    // the height of every template already walked, so each is walked once.
    fn walk<'a>(
        graph: &'a BTreeMap<&'a str, Vec<String>>,
        node: &'a str,
        chain: &mut Vec<&'a str>,
        heights: &mut BTreeMap<&'a str, usize>,
    ) -> Result<usize, Error> {
        if let Some(h) = heights.get(node) {
            return Ok(*h);
        }
        if let Some(start) = chain.iter().position(|n| *n == node) {
            let mut cycle: Vec<&str> = chain[start..].to_vec();
            cycle.push(node);
            return Err(Error::Template(format!(
                "roles/{}: partials include each other in a loop: {}",
                chain[start],
                cycle.join(" -> ")
            )));
        }
        if chain.len() > MAX_PARTIAL_DEPTH {
            return Err(Error::Template(format!(
                "roles/{}: partials nested more than {MAX_PARTIAL_DEPTH} deep",
                chain[0]
            )));
        }
        chain.push(node);
        let mut height = 0;
        for next in graph.get(node).into_iter().flatten() {
            height = height.max(1 + walk(graph, next.as_str(), chain, heights)?);
        }
        chain.pop();
        if height > MAX_PARTIAL_DEPTH {
            return Err(Error::Template(format!(
                "roles/{node}: partials nested more than {MAX_PARTIAL_DEPTH} deep"
            )));
        }
        heights.insert(node, height);
        Ok(height)
    }
    let mut heights = BTreeMap::new();
    for node in graph.keys() {
        walk(&graph, node, &mut Vec::new(), &mut heights)?;
    }
    Ok(())
}
