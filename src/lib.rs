//! pgimg: one declarative cluster spec in, reproducible per-host boot
//! artifacts out.
//!
//! The pipeline, one module per stage:
//!
//! `load` (the only reader) → `spec::parse` (YAML with positions, then the
//! JSON schema) → `model::resolve` (defaults applied once) → `check::run`
//! (semantic rules) → `plan`/`render` (pure: model → in-memory artifact
//! tree) → `write` (the only writer). Diagnostics are collected per stage and
//! gate the next one.

pub mod check;
pub mod cli;
pub mod delivery;
pub mod diag;
pub mod lab;
pub mod load;
pub mod model;
pub mod render;
pub mod schema;
pub mod secrets;
pub mod source;
pub mod spec;
pub mod write;

use std::path::Path;

use diag::Diagnostic;
use source::SourceFile;

/// The tool could not do its job (as opposed to: the spec is wrong).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Template(String),
    /// A delivery format cannot carry a host (such as user-data over EC2's size limit).
    #[error("{0}")]
    Delivery(String),
}

impl Error {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// A spec that passed every check, resolved, with its warnings.
pub struct Validated {
    pub parsed: spec::Parsed,
    pub fleet: model::Fleet,
    pub warnings: Vec<Diagnostic>,
}

/// Parses, schema-checks, resolves and semantically checks a spec.
/// `Err` carries every diagnostic found (errors and warnings), sorted.
pub fn validate(source: SourceFile, strict: bool) -> Result<Validated, Vec<Diagnostic>> {
    let parsed = match spec::parse(source) {
        Ok(p) => p,
        Err(mut d) => {
            if strict {
                check::make_strict(&mut d);
            }
            diag::sort(&mut d);
            return Err(d);
        }
    };
    let fleet = model::resolve(&parsed.spec);
    let mut diags = parsed.warnings.clone();
    diags.extend(check::run(&fleet, &parsed.spans, &parsed.source));
    if strict {
        check::make_strict(&mut diags);
    }
    diag::sort(&mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(Validated {
        parsed,
        fleet,
        warnings: diags,
    })
}

/// Everything a build reads besides the spec.
pub struct BuildInputs {
    pub roles: render::templates::RoleTree,
    pub secrets: load::SecretValues,
    pub mapping: render::context::Mapping,
}

/// One host after rendering: its slimmed plan, its files, its delivery formats.
type RenderedHost = (
    render::HostPlan,
    Vec<(String, render::Artifact)>,
    delivery::Delivered,
);

/// Renders every artifact of a validated spec. Pure: no file is read or written.
pub fn build(v: &Validated, inputs: &BuildInputs) -> Result<render::ArtifactTree, Error> {
    let roles = render::templates::Roles::compile(&inputs.roles)?;
    let fleet = &v.fleet;
    let mut tree = render::ArtifactTree::default();
    // The cluster artifacts read the context of one host per site; every other
    // context can go as soon as its host is rendered, which bounds the memory.
    let site_contexts: std::collections::BTreeSet<&str> = fleet
        .clusters
        .iter()
        .flat_map(|c| c.sites.iter())
        .filter_map(|s| s.with_role(spec::v1::Role::Pg).next().or(s.hosts.first()))
        .map(|h| h.name.as_str())
        .collect();
    let hosts: Vec<(&model::Cluster, &model::Site, &model::Host)> = fleet.hosts().collect();
    // Each host is planned, rendered and delivered in one go, so that only a
    // thread's worth of plans is alive at a time, never the whole fleet's.
    let per_host: Vec<RenderedHost> = {
        use rayon::prelude::*;
        hosts
            .par_iter()
            .map(|(c, s, host)| {
                let mut p = render::plan_host(&roles, fleet, c, s, host, &inputs.mapping)?;
                let files = render::host_artifacts(&p, fleet.source_date_epoch);
                // The rootfs now lives in the tree; nothing later reads it from the
                // plan, and keeping both copies would double the build's memory.
                p.rootfs.clear();
                let overlay = files
                    .iter()
                    .find(|(path, _)| path.ends_with("/overlay.tar.gz"))
                    .map(|(_, a)| a.bytes.as_slice())
                    .unwrap_or_default();
                let delivered = delivery::render_host(&roles, host, &p, overlay)?;
                if !site_contexts.contains(p.name.as_str()) {
                    p.context = serde_json::Value::Null;
                }
                Ok::<_, Error>((p, files, delivered))
            })
            .collect::<Result<_, _>>()?
    };
    let mut delivered = Vec::with_capacity(per_host.len());
    let mut plans = Vec::with_capacity(per_host.len());
    for (p, files, d) in per_host {
        for (path, a) in files {
            tree.files.insert(path, a);
        }
        delivered.push(d);
        plans.push(p);
    }
    // `plan` keeps fleet order, so each cluster's plans are one contiguous run.
    let mut runs = Vec::with_capacity(fleet.clusters.len());
    let mut start = 0;
    for c in &fleet.clusters {
        let n: usize = c.sites.iter().map(|s| s.hosts.len()).sum();
        runs.push((c, &plans[start..start + n]));
        start += n;
    }
    let cluster_files: Vec<Vec<(String, render::Artifact)>> = {
        use rayon::prelude::*;
        runs.par_iter()
            .map(|(c, plans_of)| render::cluster_artifacts(&roles, c, plans_of))
            .collect::<Result<_, _>>()?
    };
    for (path, a) in cluster_files.into_iter().flatten() {
        tree.files.insert(path, a);
    }
    for (path, a) in render::secrets::listings(fleet) {
        tree.files.insert(path, a);
    }
    let (secret_files, missing) = render::secrets::render(fleet, &inputs.secrets);
    for (path, a) in secret_files {
        tree.files.insert(path, a);
    }
    if !missing.is_empty() {
        tree.notes.push(format!(
            "secrets not supplied at build time; deliver them to the hosts before Patroni starts:\n{}",
            missing.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n")
        ));
    }
    delivery::finish(delivered, &mut tree)?;
    let hosts: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    // The plans' template contexts are the largest thing besides the output; the manifest needs neither.
    drop(plans);
    let spec_sha = render::manifest::sha256(v.parsed.source.text.as_bytes());
    render::manifest::finish(&mut tree, &hosts, &spec_sha, &inputs.roles.digest());
    Ok(tree)
}
