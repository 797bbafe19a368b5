//! Operations: the pipeline's stages put in sequence, once, for every
//! caller (the commands of `main`, the lab, tests). Nothing here prints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use crate::diag::{self, Diagnostic};
use crate::digest::Sum;
use crate::load::PreviousOutput;
use crate::plan::context::Mapping;
use crate::plan::roles::RoleDefs;
use crate::render::artifact::Sink;
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
    validate_keeping(source, strict, &|_| BTreeSet::new())
}

/// [`validate`] for a rebuild: `unchanged` names the clusters of the
/// resolved fleet whose inputs are those of the build that made the output
/// being replaced ([`unchanged_clusters`]). Their hosts' ports are not
/// planned again: the same inputs plan the same ports, and that build,
/// having written its output, had no error.
pub(crate) fn validate_keeping(
    source: SourceFile,
    strict: bool,
    unchanged: &dyn Fn(&model::Fleet) -> BTreeSet<String>,
) -> Result<Validated, Vec<Diagnostic>> {
    let mut v = parse_and_resolve(source, strict)?;
    v.warnings = check_resolved(&v, strict, unchanged)?;
    Ok(v)
}

/// The first half of [`validate_keeping`]: the spec parsed, schema-checked
/// and resolved, its `warnings` those of parsing alone. The semantic checks
/// ([`check_resolved`]) read it, so that a build can read its secrets
/// beside them.
pub(crate) fn parse_and_resolve(
    source: SourceFile,
    strict: bool,
) -> Result<Validated, Vec<Diagnostic>> {
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
    let warnings = parsed.warnings.clone();
    Ok(Validated {
        parsed,
        fleet,
        warnings,
    })
}

/// The second half of [`validate_keeping`]: the semantic checks of a
/// resolved spec. `Ok` is every warning (parsing's and the checks'), sorted.
pub(crate) fn check_resolved(
    v: &Validated,
    strict: bool,
    unchanged: &dyn Fn(&model::Fleet) -> BTreeSet<String>,
) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
    let mut diags = v.warnings.clone();
    let ports = planned_ports(&v.fleet, &unchanged(&v.fleet));
    diags.extend(check::run(
        &v.fleet,
        &v.parsed.spans,
        &v.parsed.source,
        &ports,
    ));
    if strict {
        diag::make_strict(&mut diags);
    }
    diag::sort(&mut diags);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(spec::bounded(diags));
    }
    Ok(diags)
}

/// The ports each host's roles open, planned from the embedded role tree's
/// `role.yaml` files, for the semantic checks; but none of the clusters in
/// `skip`. A host that cannot be planned is left out: the build reports why.
fn planned_ports(fleet: &model::Fleet, skip: &BTreeSet<String>) -> check::PlannedPorts {
    use rayon::prelude::*;
    let Ok(defs) = RoleDefs::parse(&load::RoleTree::embedded()) else {
        return Default::default();
    };
    let m = Mapping::default();
    let hosts: Vec<_> = fleet
        .hosts()
        .filter(|(c, _, _)| !skip.contains(&c.name))
        .collect();
    hosts
        .par_iter()
        .filter_map(|(c, s, h)| {
            let ports = plan::plan_ports(&defs, fleet, c, s, h, &m)
                .ok()?
                .iter()
                .map(|p| check::PortFact {
                    port: p.port,
                    proto: p.proto.clone(),
                    service: p.service.clone(),
                    setting: p.setting.clone(),
                    sources: p.sources.len(),
                    for_clients: p.for_clients,
                })
                .collect();
            Some((h.name.clone(), ports))
        })
        .collect()
}

/// Everything a build reads besides the spec.
pub struct BuildInputs {
    pub roles: load::RoleTree,
    pub secrets: load::SecretValues,
    pub mapping: Mapping,
    /// The user's files (`overlays/` beside the spec).
    pub overlays: load::Overlays,
}

/// The inputs besides the spec that a host's artifacts are rendered from,
/// and so its fingerprint: all of [`BuildInputs`] but the secret values,
/// whose files are compared apart.
pub(crate) struct RenderInputs<'a> {
    pub roles: &'a load::RoleTree,
    pub mapping: &'a Mapping,
    pub overlays: &'a load::Overlays,
}

impl BuildInputs {
    fn render(&self) -> RenderInputs<'_> {
        RenderInputs {
            roles: &self.roles,
            mapping: &self.mapping,
            overlays: &self.overlays,
        }
    }
}

/// What a build writes beyond the default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BuildOptions {
    /// Also write each host's kickstart or user-data with its secrets
    /// embedded, under `secrets/<host>/` only (`--embed-secrets`).
    pub embed_secrets: bool,
}

/// What a build did, besides the artifacts it put.
#[derive(Debug, Clone, Default)]
pub(crate) struct BuildReport {
    /// What the build should tell the user (never a secret value).
    pub notes: Vec<String>,
    /// Secret references without a value (labels, never values).
    pub missing_secrets: Vec<String>,
    /// Host → closure hash.
    pub closures: BTreeMap<String, String>,
    /// Public artifacts of the output.
    pub artifacts: usize,
    /// Hosts rendered, and hosts kept from the previous output unrendered.
    pub rendered: usize,
    pub kept: usize,
    /// False when the output already was exactly this build (nothing written).
    pub changed: bool,
    /// The private index of the secret files written (`load::SECRETS_INDEX`).
    pub secrets_index: String,
    /// What the output's state file records (`crate::state`): the
    /// manifest's digest, each host's fingerprint, and every artifact's sum.
    pub manifest_sha256: crate::digest::Digest32,
    pub sums: crate::digest::Sums,
}

/// The error of a lock that a rendering thread held when it panicked.
fn poisoned<T>(_: T) -> Error {
    Error::Invariant("a rendering thread panicked".into())
}

/// Puts every artifact into a sink, recording each one's sum for the manifest.
struct Recorder<'a> {
    sink: &'a dyn Sink,
    sums: Mutex<crate::digest::Sums>,
}

impl Recorder<'_> {
    /// Puts one host's or cluster's artifacts, and records their sums as
    /// one batch.
    fn put_all(&self, files: &[(&str, &[u8], u32)]) -> Result<(), Error> {
        self.sink.put_all(files)?;
        let batch = files
            .iter()
            .map(|(path, bytes, _)| (*path, Sum::of(bytes)))
            .collect();
        self.sums.lock().map_err(poisoned)?.insert_all(batch);
        Ok(())
    }

    fn keep(&self, path: &str, sum: &Sum) -> Result<(), Error> {
        self.sink.keep(path)?;
        self.record(path, sum.clone())
    }

    /// Keeps the directory `dir` of the previous output whole, with the
    /// sums the previous manifest gives for the files under it.
    fn keep_dir(&self, dir: &str, prev: &PreviousOutput) -> Result<(), Error> {
        let kept = self
            .sums
            .lock()
            .map_err(poisoned)?
            .copy_under(&prev.sums, &format!("{dir}/"));
        if kept == 0 {
            return Err(Error::Invariant(format!(
                "{dir}/: kept, but the previous manifest has no file under it"
            )));
        }
        self.sink.keep_dir(dir)
    }

    fn record(&self, path: &str, sum: Sum) -> Result<(), Error> {
        self.sums.lock().map_err(poisoned)?.insert(path, sum);
        Ok(())
    }
}

/// sha256 over everything a cluster's artifacts are computed from: the
/// resolved cluster (every host, setting and secret reference), the role
/// tree, the fleet's source date, the build's mapping and pgimg's version.
/// A host's artifacts read facts of its whole cluster (/etc/hosts, pg_hba,
/// etcd members, the DR source), so a host's fingerprint is its cluster's
/// with its name: any change in a cluster renders all of its hosts again.
pub(crate) fn fingerprints(
    fleet: &model::Fleet,
    inputs: &RenderInputs,
) -> BTreeMap<String, String> {
    use rayon::prelude::*;
    let base = crate::digest::sha256(
        format!(
            "pgimg {}\nroles {}\nsource_date_epoch {}\nmapping {:?}\n{}",
            env!("CARGO_PKG_VERSION"),
            inputs.roles.digest(),
            fleet.source_date_epoch,
            inputs.mapping,
            // Any user file changed: every host is rendered again. Without
            // user files the fingerprint is what it was before they existed.
            if inputs.overlays.files.is_empty() {
                String::new()
            } else {
                format!(
                    "overlays {}\n",
                    crate::digest::sha256(format!("{:?}", inputs.overlays.files).as_bytes())
                )
            }
        )
        .as_bytes(),
    );
    let shared = SharedText::of(fleet);
    fleet
        .clusters
        .par_iter()
        .flat_map_iter(|c| {
            let text = ClusterText(c, &shared);
            let cluster = crate::digest::sha256_fmt(format_args!("{base}\n{text:?}"));
            c.sites
                .iter()
                .flat_map(|s| s.hosts.iter())
                .map(move |h| {
                    let fp = crate::digest::sha256(format!("{cluster}\n{}", h.name).as_bytes());
                    (h.name.clone(), fp)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `Debug` text of every host's shared configuration and origins,
/// made once for the fleet: they are most of a cluster's text (86 % at
/// 1,000 hosts), and the hosts of a fleet mostly share them.
struct SharedText {
    /// By the address the hosts share.
    configs: std::collections::HashMap<usize, String>,
    origins: std::collections::HashMap<usize, String>,
}

/// At most this much text is held in [`SharedText`]: a fleet whose hosts
/// share little would hold a copy of every host's configuration; past the
/// budget the rest is formatted in place.
const SHARED_TEXT_BYTES: usize = 4 << 20;

impl SharedText {
    fn of(fleet: &model::Fleet) -> SharedText {
        let mut text = SharedText {
            configs: Default::default(),
            origins: Default::default(),
        };
        let mut held = 0;
        for (_, _, h) in fleet.hosts() {
            if held > SHARED_TEXT_BYTES {
                break;
            }
            if std::sync::Arc::strong_count(&h.config) > 1 {
                text.configs
                    .entry(std::sync::Arc::as_ptr(&h.config).addr())
                    .or_insert_with(|| {
                        let t = format!("{:?}", h.config);
                        held += t.len();
                        t
                    });
            }
            if std::sync::Arc::strong_count(&h.origins) > 1 {
                text.origins
                    .entry(std::sync::Arc::as_ptr(&h.origins).addr())
                    .or_insert_with(|| {
                        let t = format!("{:?}", h.origins);
                        held += t.len();
                        t
                    });
            }
        }
        text
    }
}

/// Text shown as it is.
struct Verbatim<'a>(&'a str);

impl std::fmt::Debug for Verbatim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A cluster's `Debug` text exactly as derived, its hosts' shared parts
/// taken from [`SharedText`] (a unit test holds the two equal). The
/// patterns name every field: a field added to the model stops the build
/// here until it is added to the text.
struct ClusterText<'a>(&'a model::Cluster, &'a SharedText);

impl std::fmt::Debug for ClusterText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let model::Cluster {
            name,
            pointer,
            secrets,
            sites,
        } = self.0;
        let sites: Vec<SiteText> = sites.iter().map(|s| SiteText(s, self.1)).collect();
        f.debug_struct("Cluster")
            .field("name", name)
            .field("pointer", pointer)
            .field("secrets", secrets)
            .field("sites", &sites)
            .finish()
    }
}

struct SiteText<'a>(&'a model::Site, &'a SharedText);

impl std::fmt::Debug for SiteText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let model::Site {
            name,
            pointer,
            scope,
            scope_pointer,
            standby_of,
            slot_name,
            slot_pointer,
            hosts,
        } = self.0;
        let hosts: Vec<HostText> = hosts.iter().map(|h| HostText(h, self.1)).collect();
        f.debug_struct("Site")
            .field("name", name)
            .field("pointer", pointer)
            .field("scope", scope)
            .field("scope_pointer", scope_pointer)
            .field("standby_of", standby_of)
            .field("slot_name", slot_name)
            .field("slot_pointer", slot_pointer)
            .field("hosts", &hosts)
            .finish()
    }
}

struct HostText<'a>(&'a model::Host, &'a SharedText);

impl std::fmt::Debug for HostText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let model::Host {
            name,
            pointer,
            address,
            extra_addresses,
            member_name,
            roles,
            boot,
            config,
            origins,
        } = self.0;
        let shared = self.1;
        let mut s = f.debug_struct("Host");
        s.field("name", name)
            .field("pointer", pointer)
            .field("address", address)
            .field("extra_addresses", extra_addresses)
            .field("member_name", member_name)
            .field("roles", roles)
            .field("boot", boot);
        match shared.configs.get(&std::sync::Arc::as_ptr(config).addr()) {
            Some(text) => s.field("config", &Verbatim(text)),
            None => s.field("config", config),
        };
        match shared.origins.get(&std::sync::Arc::as_ptr(origins).addr()) {
            Some(text) => s.field("origins", &Verbatim(text)),
            None => s.field("origins", origins),
        };
        s.finish()
    }
}

/// The clusters of `fleet` whose every host's fingerprint is the one
/// `previous` records, `previous` being the fingerprints of a build whose
/// port plan came from the same embedded role tree as this one's, and
/// none of whose hosts' ports drew a warning there.
pub(crate) fn unchanged_clusters(
    fleet: &model::Fleet,
    fps: &BTreeMap<String, String>,
    previous: &PreviousOutput,
) -> BTreeSet<String> {
    if previous.ports_roles != load::RoleTree::embedded().digest() {
        return BTreeSet::new();
    }
    fleet
        .clusters
        .iter()
        .filter(|c| unchanged(c, fps, Some(previous)))
        .filter(|c| {
            c.sites
                .iter()
                .flat_map(|s| s.hosts.iter())
                .all(|h| !previous.port_warnings.contains(&h.name))
        })
        .map(|c| c.name.clone())
        .collect()
}

/// Whether every host of `c` is unchanged since the previous output.
fn unchanged(
    c: &model::Cluster,
    fps: &BTreeMap<String, String>,
    previous: Option<&PreviousOutput>,
) -> bool {
    let Some(prev) = previous else {
        return false;
    };
    c.sites
        .iter()
        .flat_map(|s| s.hosts.iter())
        .all(|h| prev.fingerprints.get(&h.name) == fps.get(&h.name))
}

/// Plans and renders every artifact of a validated spec in memory. Pure: no
/// file is read or written.
pub fn build(v: &Validated, inputs: &BuildInputs) -> Result<render::ArtifactTree, Error> {
    build_with(v, inputs, BuildOptions::default())
}

/// [`build`] with options.
pub(crate) fn build_with(
    v: &Validated,
    inputs: &BuildInputs,
    options: BuildOptions,
) -> Result<render::ArtifactTree, Error> {
    let sink = Mutex::new(render::ArtifactTree::default());
    let fps = fingerprints(&v.fleet, &inputs.render());
    let report = build_into_with(v, inputs, options, &sink, None, &fps, &|_| {})?;
    let mut tree = sink.into_inner().map_err(poisoned)?;
    tree.notes = report.notes;
    tree.missing_secrets = report.missing_secrets;
    tree.closures = report.closures;
    Ok(tree)
}

/// What a build leaves beside its output so that the next build of the
/// same inputs can stop before resolving the spec (`cmd::build`).
pub(crate) struct Record<'a> {
    /// `load::secret_digest` of the secret values the build was given, for
    /// the private `load::SECRETS_DIGEST`; `None` when it is in the record.
    pub secrets_digest: Option<String>,
    /// Writes the marker's record, made from the build's report.
    pub describe: &'a dyn Fn(&BuildReport, &mut dyn std::io::Write) -> std::io::Result<()>,
}

/// sha256 over every input of a build besides the secret values: pgimg
/// itself (release, commit, and the executable's size and time, since a
/// locally changed pgimg keeps both), the spec's name and bytes (the name
/// is in its diagnostics), the flags that change the outcome, the role
/// tree, the user files and the mapping.
pub(crate) fn inputs_key(
    source: &SourceFile,
    inputs_roles: &load::RoleTree,
    overlays: &load::Overlays,
    mapping: &Mapping,
    strict: bool,
    require_secrets: bool,
    embed_secrets: bool,
) -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{} {}.{}", m.len(), m.mtime(), m.mtime_nsec())
        })
        .unwrap_or_default();
    let mut text = format!(
        "pgimg {} {} {exe}\nspec {:?} {}\nstrict {strict}\nrequire_secrets {require_secrets}\nembed_secrets {embed_secrets}\nroles {}\nmapping {mapping:?}\n",
        env!("CARGO_PKG_VERSION"),
        env!("PGIMG_GIT_COMMIT"),
        source.name,
        crate::digest::sha256(source.text.as_bytes()),
        inputs_roles.digest(),
    );
    text.push_str(&crate::digest::sha256(
        format!("{:?}", overlays.files).as_bytes(),
    ));
    crate::digest::sha256(text.as_bytes())
}

/// Builds into the output directory `out`: artifacts stream to disk as
/// hosts finish; hosts whose inputs did not change since the previous
/// output are kept from it unrendered; an output that already is this
/// build is left untouched. Atomic either way. `host_done` is called with
/// each host's name once it is rendered or kept (from any thread, in no
/// particular order), for a progress bar. `known` is what the caller has
/// read of the output and made of the spec already.
pub(crate) fn build_to_dir_with(
    v: &Validated,
    inputs: &BuildInputs,
    options: BuildOptions,
    out: &Path,
    host_done: &(dyn Fn(&str) + Sync),
    record: Option<&Record>,
    known: Known,
) -> Result<(BuildReport, crate::write::Leftover), Error> {
    let Known {
        previous,
        fingerprints: fingerprints_known,
    } = known;
    let fps = fingerprints_known.unwrap_or_else(|| fingerprints(&v.fleet, &inputs.render()));
    // The embedded install files are rendered from the plan of every host,
    // which an up-to-date output or a kept host skips.
    if !options.embed_secrets
        && let Some(prev) = &previous
        && let Some(report) = up_to_date(v, inputs, &fps, prev)?
    {
        return Ok((report, crate::write::Leftover::none()));
    }
    let staging = crate::write::Staging::new(out, previous.as_ref())?;
    let report = build_into_with(
        v,
        inputs,
        options,
        &staging,
        previous.as_ref(),
        &fps,
        host_done,
    )?;
    let port_warnings: BTreeSet<&str> = v
        .warnings
        .iter()
        .filter(|d| check::is_about_ports(d.code))
        .flat_map(|d| d.hosts.iter().map(String::as_str))
        .collect();
    let port_warnings: Vec<&str> = port_warnings.into_iter().collect();
    let put_state = || {
        staging.put_with(crate::state::STATE_FILE, 0o644, &mut |w| {
            let hosts: Vec<(&str, &str, &str)> = fps
                .iter()
                .map(|(h, fp)| {
                    let closure = report.closures.get(h).map_or("", String::as_str);
                    (h.as_str(), fp.as_str(), closure)
                })
                .collect();
            crate::state::write(
                w,
                &report.manifest_sha256,
                &load::RoleTree::embedded().digest(),
                &port_warnings,
                &hosts,
                &report.sums,
                &render::manifest::is_public,
            )
        })
    };
    let put_rest = || {
        let digest = record.and_then(|r| r.secrets_digest.as_ref());
        // Whenever the output has a secrets directory, it has the index: an
        // output without one is read as having no previous secret files.
        if !report.secrets_index.is_empty() || digest.is_some() {
            staging.put(load::SECRETS_INDEX, report.secrets_index.as_bytes(), 0o600)?;
        }
        if let Some(d) = digest {
            staging.put(load::SECRETS_DIGEST, d.as_bytes(), 0o600)?;
        }
        staging.put_marker(&mut |w| match record {
            Some(r) => (r.describe)(&report, w),
            None => Ok(()),
        })
    };
    // The state file, the marker's record and the commit's reading of the
    // previous output are a few milliseconds each, and independent: each
    // on a core of its own when there is one.
    let (state, rest, prepared) = std::thread::scope(|scope| {
        let state = std::thread::Builder::new()
            .name("state".into())
            .spawn_scoped(scope, put_state);
        let prepared = std::thread::Builder::new()
            .name("commit".into())
            .spawn_scoped(scope, || staging.prepare_commit());
        let rest = put_rest();
        let state = match state {
            Ok(thread) => thread.join().unwrap_or_else(|p| Err(poisoned(p))),
            Err(_) => put_state(),
        };
        let prepared = match prepared {
            Ok(thread) => thread.join().unwrap_or_else(|p| Err(poisoned(p))),
            Err(_) => staging.prepare_commit(),
        };
        (state, rest, prepared)
    });
    state?;
    rest?;
    if let Some(e) = report.sums.read_error() {
        return Err(Error::io(
            "reading back the artifacts' sums from",
            Path::new("the staging directory's scratch file"),
            e,
        ));
    }
    let leftover = staging.commit_prepared(prepared?)?;
    Ok((report, leftover))
}

/// What a build into a directory may be given rather than make again.
pub(crate) struct Known {
    /// [`load::previous_output`] of the output directory, read after
    /// [`crate::write::recover`]: a killed build's staging gone and a
    /// previous output it had moved aside back.
    pub previous: Option<PreviousOutput>,
    /// [`fingerprints`] of the spec's hosts.
    pub fingerprints: Option<BTreeMap<String, String>>,
}

/// The report of a build that would not change `prev` at all, if so: every
/// host unchanged, the same secret files, the same manifest.
fn up_to_date(
    v: &Validated,
    inputs: &BuildInputs,
    fps: &BTreeMap<String, String>,
    prev: &PreviousOutput,
) -> Result<Option<BuildReport>, Error> {
    let fleet = &v.fleet;
    if fps.len() != prev.fingerprints.len()
        || !fleet.clusters.iter().all(|c| unchanged(c, fps, Some(prev)))
    {
        return Ok(None);
    }
    let (secret_files, missing) = render::secrets::render(fleet, &inputs.secrets);
    if secret_files.len() != prev.secrets.len()
        || secret_files.iter().any(|(p, a)| {
            prev.secrets
                .get(p)
                .is_none_or(|old| *old != crate::digest::Digest32::of(&a.bytes))
        })
    {
        return Ok(None);
    }
    drop(secret_files);
    // Every host is unchanged and the secret files (which never enter the
    // manifest) are the same: the manifest this build would write is the
    // previous one exactly when its digest is, computed without its bytes.
    let sums = &prev.sums;
    let spec_sha = render::manifest::sha256(v.parsed.source.text.as_bytes());
    let finished = render::manifest::manifest(
        sums,
        fps,
        &|h| prev.closures.get(h).cloned(),
        &spec_sha,
        &inputs.roles.digest(),
        None,
    )
    .map_err(|e| Error::io("hashing", Path::new("manifest.json"), e))?;
    if finished.manifest_sha256 != prev.manifest_sha256 {
        return Ok(None);
    }
    let no_mac: Vec<String> = fleet
        .hosts()
        .filter(|(_, _, h)| h.boot.mac.is_none())
        .map(|(_, _, h)| h.name.clone())
        .collect();
    let mut notes = render::install::notes(&[], &no_mac)?;
    let missing_secrets: Vec<String> = missing.into_iter().collect();
    if let Some(n) = missing_note(&missing_secrets) {
        notes.insert(0, n);
    }
    Ok(Some(BuildReport {
        notes,
        missing_secrets,
        closures: finished.closures,
        artifacts: sums
            .iter()
            .filter(|(p, _)| render::manifest::is_public(p.head))
            .count()
            + 2,
        rendered: 0,
        kept: fps.len(),
        changed: false,
        secrets_index: String::new(),
        ..BuildReport::default()
    }))
}

fn missing_note(missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        format!(
            "secrets not supplied at build time; deliver them to the hosts before Patroni starts:\n{}",
            missing
                .iter()
                .map(|m| format!("  - {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Plans and renders every artifact into `sink`, keeping the unchanged
/// hosts and clusters of `previous` unrendered.
pub(crate) fn build_into_with(
    v: &Validated,
    inputs: &BuildInputs,
    options: BuildOptions,
    sink: &dyn Sink,
    previous: Option<&PreviousOutput>,
    fps: &BTreeMap<String, String>,
    host_done: &(dyn Fn(&str) + Sync),
) -> Result<BuildReport, Error> {
    use rayon::prelude::*;
    let previous = previous.filter(|_| !options.embed_secrets);
    let defs = RoleDefs::parse(&inputs.roles)?;
    // Asked for by the first thread that renders, while the others go on
    // keeping hosts; a build that renders nothing never needs them.
    let compiled = std::sync::OnceLock::new();
    let templates = || {
        compiled
            .get_or_init(|| {
                render::templates::Templates::shared(&inputs.roles).map_err(|e| e.to_string())
            })
            .as_deref()
            .map_err(|e| Error::Template(e.clone()))
    };
    let fleet = &v.fleet;
    let m = &inputs.mapping;
    let role_names: Vec<String> = defs.defs.keys().cloned().collect();
    plan::overlay::check_scopes(fleet, &inputs.overlays, &role_names)?;
    let mut sums = match sink.scratch()? {
        Some(file) => crate::digest::Sums::spilling_to(file),
        None => crate::digest::Sums::default(),
    };
    if let Some(prev) = previous {
        sums.number_rests_as(&prev.sums);
    }
    let rec = Recorder {
        sink,
        sums: Mutex::new(sums),
    };
    let kept_clusters: BTreeSet<&str> = fleet
        .clusters
        .iter()
        .filter(|c| unchanged(c, fps, previous))
        .map(|c| c.name.as_str())
        .collect();
    // The previous output a cluster's hosts are kept from, when they are.
    let kept_from =
        |c: &model::Cluster| previous.filter(|_| kept_clusters.contains(c.name.as_str()));
    let hosts: Vec<(&model::Cluster, &model::Site, &model::Host)> = fleet.hosts().collect();
    // The references no host could be given, gathered as hosts finish:
    // most are the same few for every host, and a set per host would hold
    // a large fleet's copies of them until the end.
    let missing = Mutex::new(BTreeSet::new());
    let secrets_of = |c: &model::Cluster, s: &model::Site, host: &model::Host| {
        let (files, host_missing) =
            render::secrets::render_host(c, s, host, &inputs.secrets, fleet.source_date_epoch);
        put_secrets(&rec, &files, previous)?;
        if !host_missing.is_empty() {
            missing.lock().map_err(poisoned)?.extend(host_missing);
        }
        Ok::<_, Error>(())
    };
    // What the notes need of the rendered hosts, kept only for the few that
    // have something to note, with the host's place in the fleet.
    let noteworthy = Mutex::new(Vec::new());
    let rendered_hosts = std::sync::atomic::AtomicUsize::new(0);
    // Each host is planned, rendered and put in one go, so that only a
    // thread's worth of artifacts is alive at a time, never the fleet's.
    // A host's secret files are made and put with it, whether its other
    // artifacts are kept or rendered: its secret values may have changed.
    let each_host =
        |&(at, (c, s, host)): &(usize, &(&model::Cluster, &model::Site, &model::Host))| {
            if let Some(prev) = kept_from(c) {
                rec.keep_dir(&format!("hosts/{}", host.name), prev)?;
                for path in render::install::pxe::paths(host) {
                    let sum = prev.sums.get(&path).ok_or_else(|| {
                        Error::Invariant(format!("{path}: in the previous manifest without a sum"))
                    })?;
                    rec.keep(&path, &sum)?;
                }
                secrets_of(c, s, host)?;
                host_done(&host.name);
                return Ok(());
            }
            let mut p = plan::plan_host(&defs, fleet, c, s, host, m)?;
            plan::overlay::apply(&mut p, &inputs.overlays, c, s, host)?;
            let templates = templates()?;
            let rootfs = render::rootfs(templates, &p, c, s, host, m)?;
            let files = render::host_artifacts(&p, &rootfs, fleet.source_date_epoch)?;
            drop(rootfs);
            let overlay = files
                .iter()
                .find(|(path, _)| path.ends_with("/overlay.tar.gz"))
                .map(|(_, a)| a.bytes.as_slice())
                .unwrap_or_default();
            let mut delivered = render::install::render_host(templates, host, &p, overlay)?;
            let embedded = if options.embed_secrets {
                render::install::render_embedded(
                    templates,
                    (c, s, host),
                    &p,
                    overlay,
                    &inputs.secrets,
                    &mut delivered,
                )?
            } else {
                None
            };
            let listing = render::secrets::listing(c, s, host);
            let all: Vec<(&str, &[u8], u32)> = embedded
                .iter()
                .map(|(path, bytes)| (path.as_str(), bytes.as_slice(), 0o600))
                .chain(
                    files
                        .iter()
                        .map(|(path, a)| (path.as_str(), a.bytes.as_slice(), a.mode)),
                )
                .chain(
                    delivered
                        .files
                        .iter()
                        .map(|(path, bytes)| (path.as_str(), bytes.as_slice(), 0o644)),
                )
                .chain(std::iter::once((
                    listing.0.as_str(),
                    listing.1.bytes.as_slice(),
                    listing.1.mode,
                )))
                .collect();
            rec.put_all(&all)?;
            drop(all);
            secrets_of(c, s, host)?;
            rendered_hosts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if delivered.has_notes() {
                noteworthy
                    .lock()
                    .map_err(poisoned)?
                    .push((at, delivered.without_files()));
            }
            host_done(&host.name);
            Ok::<_, Error>(())
        };
    // The hosts rendered are a millisecond or more each, the kept ones a
    // few microseconds: rendered one a task, beside the kept ones, so that
    // the changed cluster's hosts, neighbours in the fleet, are not left
    // to one thread while the others have finished keeping theirs.
    let (rendered, kept): (Vec<_>, Vec<_>) = hosts
        .iter()
        .enumerate()
        .partition(|(_, (c, _, _))| kept_from(c).is_none());
    let (rendered, kept) = rayon::join(
        || rendered.par_iter().with_max_len(1).try_for_each(each_host),
        || kept.par_iter().try_for_each(each_host),
    );
    rendered?;
    kept?;
    fleet.clusters.par_iter().try_for_each(|c| {
        if let Some(prev) = kept_from(c) {
            rec.keep_dir(&format!("clusters/{}", c.name), prev)?;
            return Ok(());
        }
        let files = plan::plan_cluster(&defs, fleet, c, m)?;
        let rendered = render::cluster_artifacts(templates()?, &c.name, &files)?;
        let dcs = render::daytwo::dcs_artifacts(c, m);
        let all: Vec<(&str, &[u8], u32)> = rendered
            .iter()
            .chain(dcs.iter())
            .map(|(path, a)| (path.as_str(), a.bytes.as_slice(), a.mode))
            .collect();
        rec.put_all(&all)?;
        Ok::<_, Error>(())
    })?;
    let mut noteworthy = noteworthy.into_inner().map_err(poisoned)?;
    noteworthy.sort_by_key(|(at, _)| *at);
    let noteworthy: Vec<render::install::Delivered> =
        noteworthy.into_iter().map(|(_, d)| d).collect();
    let rendered_hosts = rendered_hosts.into_inner();
    let no_mac: Vec<String> = hosts
        .iter()
        .filter(|(_, _, h)| h.boot.mac.is_none())
        .map(|(_, _, h)| h.name.clone())
        .collect();
    let mut notes = render::install::notes(&noteworthy, &no_mac)?;
    let missing_secrets: Vec<String> = missing
        .into_inner()
        .map_err(poisoned)?
        .into_iter()
        .collect();
    if let Some(n) = missing_note(&missing_secrets) {
        notes.insert(0, n);
    }
    let sums = rec.sums.into_inner().map_err(poisoned)?;
    // A kept host's directory, and so its closure, is the previous build's
    // (looked up, not copied: at 30,000 hosts the copies were megabytes at
    // the build's peak).
    let kept_hosts: std::collections::HashSet<&str> = hosts
        .iter()
        .filter(|(c, _, _)| kept_from(c).is_some())
        .map(|(_, _, h)| h.name.as_str())
        .collect();
    let kept_closure = |h: &str| {
        let prev = previous.filter(|_| kept_hosts.contains(h))?;
        prev.closures.get(h).cloned()
    };
    let spec_sha = render::manifest::sha256(v.parsed.source.text.as_bytes());
    let roles_sha = inputs.roles.digest();
    // `SHA256SUMS` is written beside the manifest, on a thread of its own:
    // it lists the same sums, and needs the manifest's digest only for the
    // manifest's own line, which it waits for there.
    let (digest_to, digest_from) = std::sync::mpsc::sync_channel::<crate::digest::Digest32>(1);
    let list = |digest: &mut dyn FnMut() -> std::io::Result<crate::digest::Digest32>| {
        sink.put_with("SHA256SUMS", 0o644, &mut |w| {
            render::manifest::sha256sums(&sums, digest, w)
        })
    };
    let mut finished = None;
    let (written, listed) = std::thread::scope(|scope| {
        let listing = std::thread::Builder::new().spawn_scoped(scope, move || {
            list(&mut || {
                digest_from
                    .recv()
                    .map_err(|_| std::io::Error::other("manifest.json was not written"))
            })
        });
        let written = sink.put_with("manifest.json", 0o644, &mut |w| {
            finished = Some(render::manifest::manifest(
                &sums,
                fps,
                &kept_closure,
                &spec_sha,
                &roles_sha,
                Some(w),
            )?);
            Ok(())
        });
        if let Some(f) = &finished {
            // The listing thread may have ended early: its error tells.
            let _ = digest_to.send(f.manifest_sha256);
        }
        drop(digest_to);
        let listed = match listing {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::Invariant("the SHA256SUMS thread panicked".into()))),
            // No thread to be had: listed here, after the manifest.
            Err(_) => match &finished {
                Some(f) => list(&mut || Ok(f.manifest_sha256)),
                None => Ok(()),
            },
        };
        (written, listed)
    });
    written?;
    listed?;
    let finished =
        finished.ok_or_else(|| Error::Invariant("manifest.json was not written".into()))?;
    let mut secret_files = 0;
    let secrets_index = load::secrets_index(sums.under("secrets/").map(|(p, sum)| {
        secret_files += 1;
        (p, sum.sha256)
    }));
    if let Some(e) = sums.read_error() {
        return Err(Error::io(
            "reading back the artifacts' sums from",
            Path::new("the staging directory's scratch file"),
            e,
        ));
    }
    Ok(BuildReport {
        notes,
        missing_secrets,
        closures: finished.closures,
        // Every public artifact, the manifest and SHA256SUMS.
        artifacts: sums.len() - secret_files + 2,
        rendered: rendered_hosts,
        kept: hosts.len() - rendered_hosts,
        changed: true,
        secrets_index,
        manifest_sha256: finished.manifest_sha256,
        sums,
    })
}

/// Puts one host's secret files, keeping its directory of them whole when
/// the previous output has exactly these files there (by its index); their
/// sums, recorded like every artifact's, make the next build's index.
fn put_secrets(
    rec: &Recorder,
    files: &[(String, render::Artifact)],
    previous: Option<&PreviousOutput>,
) -> Result<(), Error> {
    // `secrets/<host>/…` by host directory; files beside the directories
    // (`secrets/<host>.tar.gz.sha256`) are put one by one.
    let mut dirs: BTreeMap<&str, Vec<(&str, &render::Artifact, Sum)>> = BTreeMap::new();
    for (path, a) in files {
        let sum = Sum::of(&a.bytes);
        let dir = path
            .strip_prefix("secrets/")
            .and_then(|rest| rest.split_once('/'))
            .map(|(host, _)| &path[..("secrets/".len() + host.len())]);
        match dir {
            Some(dir) => dirs.entry(dir).or_default().push((path, a, sum)),
            None => {
                rec.sink.put(path, &a.bytes, a.mode)?;
                rec.record(path, sum)?;
            }
        }
    }
    for (dir, group) in dirs {
        let prefix = format!("{dir}/");
        let unchanged = previous.is_some_and(|prev| {
            let before = prev
                .secrets
                .range::<str, _>((
                    std::ops::Bound::Included(prefix.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take_while(|(p, _)| p.starts_with(&prefix))
                .count();
            before == group.len()
                && group
                    .iter()
                    .all(|(p, _, sum)| prev.secrets.get(*p) == Some(&sum.sha256))
        });
        if unchanged {
            rec.sink.keep_dir(dir)?;
        } else {
            let all: Vec<(&str, &[u8], u32)> = group
                .iter()
                .map(|(path, a, _)| (*path, a.bytes.as_slice(), a.mode))
                .collect();
            rec.sink.put_all(&all)?;
        }
        rec.sums.lock().map_err(poisoned)?.insert_all(
            group
                .into_iter()
                .map(|(path, _, sum)| (path, sum))
                .collect(),
        );
    }
    Ok(())
}

/// Why a spec could not be built: it is wrong (diagnostics, exit 1), or the
/// tool could not do its job (exit 2).
pub(crate) enum Failure {
    Invalid(SourceFile, Vec<Diagnostic>),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

/// Reads and validates a spec file.
pub(crate) fn validate_file(path: &Path, strict: bool) -> Result<(Validated, SourceFile), Failure> {
    let source = load::spec(path)?;
    match validate(source.clone(), strict) {
        Ok(v) => Ok((v, source)),
        Err(d) => Err(Failure::Invalid(source, d)),
    }
}

/// The values [`crate::secret_ops::read_and_check`] read for `v` (its
/// reading and diagnostics), or why the build stops: its errors, with
/// `v`'s warnings, sorted.
pub(crate) fn secret_values(
    read: Result<(crate::secrets::Reading, Vec<Diagnostic>), Error>,
    v: &Validated,
) -> Result<load::SecretValues, Failure> {
    let (reading, diags) = read?;
    if diags.iter().any(Diagnostic::is_error) {
        let mut all = diags;
        all.extend(v.warnings.iter().cloned());
        crate::diag::sort(&mut all);
        return Err(Failure::Invalid(v.parsed.source.clone(), all));
    }
    Ok(reading.values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint text with the shared parts looked up is the derived
    /// `Debug` text, byte for byte, for every example spec's clusters (DR
    /// sites, extra addresses and per-host settings among them).
    #[test]
    fn cluster_text_is_the_derived_debug_text() {
        for example in [
            "fleet.yml",
            "minimal.yml",
            "reference-cluster.yml",
            "small.yml",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(example);
            let source = load::spec(&path).expect("reading the example");
            let v = validate(source, false).unwrap_or_else(|_| panic!("{example} is valid"));
            let shared = SharedText::of(&v.fleet);
            assert!(!shared.configs.is_empty(), "{example}");
            for c in &v.fleet.clusters {
                assert_eq!(
                    format!("{:?}", ClusterText(c, &shared)),
                    format!("{c:?}"),
                    "{example}: cluster {}",
                    c.name
                );
            }
            // A host whose shared parts were not gathered is shown in full.
            let none = SharedText {
                configs: Default::default(),
                origins: Default::default(),
            };
            let c = &v.fleet.clusters[0];
            assert_eq!(format!("{:?}", ClusterText(c, &none)), format!("{c:?}"));
        }
    }
}
