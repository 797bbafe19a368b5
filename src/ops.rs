//! Operations: the pipeline's stages put in sequence, once, for every
//! caller (the commands of `main`, the lab, tests). Nothing here prints.

use std::path::Path;

use crate::diag::{self, Diagnostic};
use crate::plan::context::Mapping;
use crate::plan::roles::RoleDefs;
use crate::source::SourceFile;
use crate::{Error, check, load, model, plan, render, spec};

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
                diag::make_strict(&mut d);
            }
            diag::sort(&mut d);
            return Err(d);
        }
    };
    let fleet = model::resolve(&parsed.spec);
    let mut diags = parsed.warnings.clone();
    diags.extend(check::run(&fleet, &parsed.spans, &parsed.source));
    if strict {
        diag::make_strict(&mut diags);
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
    pub roles: load::RoleTree,
    pub secrets: load::SecretValues,
    pub mapping: Mapping,
}

/// One host after rendering: its files and its install formats.
struct RenderedHost {
    files: Vec<(String, render::Artifact)>,
    delivered: render::install::Delivered,
}

/// Plans and renders every artifact of a validated spec. Pure: no file is
/// read or written.
pub fn build(v: &Validated, inputs: &BuildInputs) -> Result<render::ArtifactTree, Error> {
    let defs = RoleDefs::parse(&inputs.roles)?;
    let templates = render::templates::Templates::compile(&inputs.roles)?;
    let fleet = &v.fleet;
    let m = &inputs.mapping;
    let mut tree = render::ArtifactTree::default();
    let hosts: Vec<(&model::Cluster, &model::Site, &model::Host)> = fleet.hosts().collect();
    // Each host is planned, rendered and delivered in one go, so that only a
    // thread's worth of plans is alive at a time, never the whole fleet's.
    let per_host: Vec<RenderedHost> = {
        use rayon::prelude::*;
        hosts
            .par_iter()
            .map(|(c, s, host)| {
                let p = plan::plan_host(&defs, fleet, c, s, host, m)?;
                let rootfs = render::rootfs(&templates, &p, c, s, host, m)?;
                let files = render::host_artifacts(&p, &rootfs, fleet.source_date_epoch);
                drop(rootfs);
                let overlay = files
                    .iter()
                    .find(|(path, _)| path.ends_with("/overlay.tar.gz"))
                    .map(|(_, a)| a.bytes.as_slice())
                    .unwrap_or_default();
                let delivered = render::install::render_host(&templates, host, &p, overlay)?;
                Ok::<_, Error>(RenderedHost { files, delivered })
            })
            .collect::<Result<_, _>>()?
    };
    let mut delivered = Vec::with_capacity(per_host.len());
    for h in per_host {
        for (path, a) in h.files {
            tree.files.insert(path, a);
        }
        delivered.push(h.delivered);
    }
    let cluster_files: Vec<Vec<(String, render::Artifact)>> = {
        use rayon::prelude::*;
        fleet
            .clusters
            .par_iter()
            .map(|c| {
                let files = plan::plan_cluster(&defs, fleet, c, m)?;
                render::cluster_artifacts(&templates, &c.name, &files)
            })
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
    tree.missing_secrets = missing.iter().cloned().collect();
    if !missing.is_empty() {
        tree.notes.push(format!(
            "secrets not supplied at build time; deliver them to the hosts before Patroni starts:\n{}",
            missing.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n")
        ));
    }
    render::install::finish(delivered, &mut tree)?;
    let host_names: Vec<String> = hosts.iter().map(|(_, _, h)| h.name.clone()).collect();
    let spec_sha = render::manifest::sha256(v.parsed.source.text.as_bytes());
    render::manifest::finish(&mut tree, &host_names, &spec_sha, &inputs.roles.digest());
    Ok(tree)
}

/// Why a spec could not be built: it is wrong (diagnostics, exit 1), or the
/// tool could not do its job (exit 2).
pub enum Failure {
    Invalid(SourceFile, Vec<Diagnostic>),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

/// Reads and validates a spec file.
pub fn validate_file(path: &Path, strict: bool) -> Result<(Validated, SourceFile), Failure> {
    let source = load::spec(path)?;
    match validate(source.clone(), strict) {
        Ok(v) => Ok((v, source)),
        Err(d) => Err(Failure::Invalid(source, d)),
    }
}

/// The inputs of a real build of the spec at `spec_path`: the embedded role
/// tree or `roles`, and the secrets its references point to, read now
/// (`env:` ones also from `secrets_env`). A secret value that cannot be used
/// fails the build with its diagnostics; a missing one too when `require`.
pub fn real_inputs(
    v: &Validated,
    spec_path: &Path,
    roles: Option<&Path>,
    secrets_env: Option<&Path>,
    require: bool,
) -> Result<BuildInputs, Failure> {
    let (_, reading, diags) =
        crate::secret_ops::read_and_check(v, spec_path, secrets_env, require)?;
    if diags.iter().any(Diagnostic::is_error) {
        let mut all = diags;
        all.extend(v.warnings.iter().cloned());
        crate::diag::sort(&mut all);
        return Err(Failure::Invalid(v.parsed.source.clone(), all));
    }
    Ok(BuildInputs {
        roles: match roles {
            Some(dir) => load::roles(dir)?,
            None => load::RoleTree::embedded(),
        },
        secrets: reading.values,
        mapping: Default::default(),
    })
}
