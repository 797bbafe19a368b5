//! `pgimg build`: validate, render, write, and report — for people (a
//! summary and each host's closure hash, marked when it changed since the
//! output it replaces) or as one JSON document on stdout.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::term::{Term, plural};
use crate::cli::Format;
use crate::commands::Output;
use crate::diag;

pub(crate) struct Args<'a> {
    pub spec: &'a Path,
    pub out: &'a Path,
    pub roles: Option<&'a Path>,
    pub format: Format,
    pub strict: bool,
    /// Fail on a missing, empty or unreadable secret (`--require-secrets`, implied by `--strict`).
    pub require_secrets: bool,
    /// `NAME=value` lines for `env:` references (`--secrets-env`).
    pub secrets_env: Option<&'a Path>,
    /// Also write the install files with the secrets embedded (`--embed-secrets`).
    pub embed_secrets: bool,
}

/// How a host's closure compares with the output being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// There was no previous output to compare with.
    Unknown,
    New,
    Changed,
    Unchanged,
}

impl Change {
    fn of(previous: &BTreeMap<String, String>, host: &str, closure: &str) -> Change {
        if previous.is_empty() {
            return Change::Unknown;
        }
        match previous.get(host) {
            None => Change::New,
            Some(c) if c == closure => Change::Unchanged,
            Some(_) => Change::Changed,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Change::Unknown => "",
            Change::New => "new",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// What a successful build reports.
pub(crate) struct Report {
    pub out: String,
    pub clusters: usize,
    /// Host, cluster, site, closure, change, artifact paths; in fleet order.
    pub hosts: Vec<HostReport>,
    pub public_artifacts: usize,
    /// Hosts rendered, and hosts kept from the previous output unrendered.
    pub rendered: usize,
    pub kept: usize,
    /// False when the output already was exactly this build (nothing written).
    pub written: bool,
    pub notes: Vec<String>,
    pub missing_secrets: Vec<String>,
    pub warnings: Vec<diag::Diagnostic>,
}

pub(crate) struct HostReport {
    pub name: String,
    pub cluster: String,
    pub site: String,
    pub closure: String,
    pub change: Change,
    pub artifacts: Vec<String>,
}

/// The human report: a summary line, then one labelled line per host,
/// written line by line (a large fleet's report is megabytes).
pub(crate) fn write_human(r: &Report, term: &Term, o: &mut dyn io::Write) -> io::Result<()> {
    writeln!(
        o,
        "{}",
        term.good(&format!(
            "{} {} cluster{}, {} host{} ({} rendered, {} unchanged), {} artifacts in {}",
            if !r.written {
                "up to date:"
            } else if r.kept > 0 {
                "rebuilt"
            } else {
                "built"
            },
            r.clusters,
            plural(r.clusters),
            r.hosts.len(),
            plural(r.hosts.len()),
            r.rendered,
            r.kept,
            r.public_artifacts,
            r.out
        ))
    )?;
    let width = r.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
    let changed = r
        .hosts
        .iter()
        .filter(|h| matches!(h.change, Change::Changed | Change::New))
        .count();
    for h in &r.hosts {
        let mark = match h.change {
            Change::Changed | Change::New => format!("  {}", term.notice(h.change.word())),
            _ => String::new(),
        };
        writeln!(
            o,
            "  host {:<width$}  closure sha256:{}{mark}",
            h.name, h.closure
        )?;
        if term.verbose {
            for a in &h.artifacts {
                writeln!(o, "    {a}")?;
            }
        }
    }
    if r.hosts.iter().any(|h| h.change != Change::Unknown) {
        writeln!(
            o,
            "{changed} of {} host{} changed since the previous output",
            r.hosts.len(),
            plural(r.hosts.len())
        )?;
    }
    Ok(())
}

/// The JSON report: one document.
pub(crate) fn json(r: &Report) -> Value {
    json!({
        "status": "built",
        "out": r.out,
        "clusters": r.clusters,
        "artifacts": r.public_artifacts,
        "rendered": r.rendered,
        "unchanged": r.kept,
        "written": r.written,
        "hosts": r.hosts.iter().map(|h| json!({
            "name": h.name,
            "cluster": h.cluster,
            "site": h.site,
            "closure": format!("sha256:{}", h.closure),
            "change": match h.change { Change::Unknown => Value::Null, c => c.word().into() },
            "artifacts": h.artifacts,
        })).collect::<Vec<_>>(),
        "notes": r.notes,
        "missing_secrets": r.missing_secrets,
        "diagnostics": diags_json(&r.warnings),
    })
}

fn diags_json(d: &[diag::Diagnostic]) -> Vec<Value> {
    d.iter()
        .map(|d| serde_json::from_str(&diag::render_json(d)).unwrap_or(Value::Null))
        .collect()
}

/// Prints the one JSON document.
fn print_json(v: &Value, o: &mut Output) -> io::Result<()> {
    writeln!(
        o.out,
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    )
}

/// What a build records in its output's marker (`ops::Record`): enough to
/// report a rebuild of the same inputs without resolving the spec again.
#[derive(serde::Deserialize)]
struct Recorded {
    /// `ops::inputs_key` of the build.
    inputs: String,
    /// The labels of the secret references, for `load::secret_digest`.
    secrets: Vec<String>,
    /// Their digest when no value was there; else it is kept privately
    /// (`load::SECRETS_DIGEST`).
    secrets_digest: Option<String>,
    clusters: usize,
    artifacts: usize,
    /// Name, cluster, site and closure of every host, in fleet order.
    hosts: Vec<[String; 4]>,
    notes: Vec<String>,
    missing_secrets: Vec<String>,
    /// The warnings, as `diag::render_json` lines.
    diagnostics: Vec<String>,
}

/// [`Recorded`] as a build writes it: borrowed, and streamed into the
/// marker (at 30,000 hosts it is over 20 MB of JSON).
#[derive(serde::Serialize)]
struct RecordOut<'a> {
    inputs: &'a str,
    secrets: &'a [String],
    secrets_digest: Option<&'a str>,
    clusters: usize,
    artifacts: usize,
    hosts: RecordHosts<'a>,
    notes: &'a [String],
    missing_secrets: &'a [String],
    diagnostics: RecordDiagnostics<'a>,
}

/// `Recorded::hosts`, made as it is written.
struct RecordHosts<'a> {
    fleet: &'a crate::model::Fleet,
    closures: &'a std::collections::BTreeMap<String, String>,
}

impl serde::Serialize for RecordHosts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.fleet.hosts().map(|(c, site, h)| {
            [
                h.name.as_str(),
                c.name.as_str(),
                site.name.as_str(),
                self.closures.get(&h.name).map_or("", String::as_str),
            ]
        }))
    }
}

/// `Recorded::diagnostics`, each rendered as it is written.
struct RecordDiagnostics<'a>(&'a [diag::Diagnostic]);

impl serde::Serialize for RecordDiagnostics<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(diag::render_json))
    }
}

/// The labels of `refs`, each once, in the order first met.
fn secret_labels(refs: &[crate::secrets::Reference]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    refs.iter()
        .map(|r| r.label())
        .filter(|l| seen.insert(l.clone()))
        .collect()
}

/// The report of a build whose every input equals that of the build the
/// output under `a.out` records: that output is what this build would
/// write, so it stops before validating and resolving the spec.
fn recorded(a: &Args, source: &crate::source::SourceFile) -> Option<Report> {
    crate::write::recover(a.out).ok()?;
    let roles = match a.roles {
        Some(dir) => crate::load::roles(dir).ok()?,
        None => crate::load::RoleTree::embedded(),
    };
    let spec_dir = crate::load::spec_dir(a.spec);
    let overlays = crate::load::overlays(&spec_dir.join(crate::load::OVERLAYS)).ok()?;
    let key = crate::ops::inputs_key(
        source,
        &roles,
        &overlays,
        &Default::default(),
        a.strict,
        a.require_secrets || a.strict,
        a.embed_secrets,
    );
    // Changed inputs are told by the record's first bytes; only a record
    // of the same inputs is read whole.
    if crate::load::recorded_inputs(a.out).is_some_and(|recorded| recorded != key) {
        return None;
    }
    let (text, secrets_digest) = crate::load::recorded_build(a.out)?;
    let r: Recorded = serde_json::from_str(&text).ok()?;
    let recorded_digest = r.secrets_digest.clone().or(secrets_digest)?;
    if key != r.inputs
        || recorded_digest != crate::load::secret_digest(&r.secrets, &spec_dir, a.secrets_env).0
    {
        return None;
    }
    let warnings = r
        .diagnostics
        .iter()
        .map(|l| diag::parse_json(l))
        .collect::<Option<Vec<_>>>()?;
    Some(Report {
        out: a.out.display().to_string(),
        clusters: r.clusters,
        hosts: r
            .hosts
            .into_iter()
            .map(|[name, cluster, site, closure]| HostReport {
                name,
                cluster,
                site,
                closure,
                change: Change::Unchanged,
                artifacts: Vec::new(),
            })
            .collect(),
        public_artifacts: r.artifacts,
        rendered: 0,
        kept: 0,
        written: false,
        notes: r.notes,
        missing_secrets: r.missing_secrets,
        warnings,
    })
}

/// Each host's closure in the output under `out`: from its marker's
/// record, which is a small fraction of its manifest, or else from the
/// manifest.
fn previous_closures(out: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct RecordedHosts {
        hosts: Vec<[String; 4]>,
    }
    crate::load::recorded_part::<RecordedHosts>(out)
        .map(|r| {
            r.hosts
                .into_iter()
                .map(|[name, _, _, closure]| (name, closure))
                .collect()
        })
        .unwrap_or_else(|| crate::load::previous_closures(out))
}

/// The largest fleet whose secrets a build reads beside its semantic
/// checks, on another thread (see `run`).
const READ_BESIDE_HOSTS: usize = 10_000;

/// Prints a build's report.
fn finish(mut report: Report, a: &Args, term: &Term, o: &mut Output) -> io::Result<ExitCode> {
    let json_out = a.format == Format::Json;
    // Each host's artifact list is shown only in JSON and verbose reports:
    // a large fleet's manifest is not read back otherwise.
    if json_out || term.verbose {
        let artifacts = crate::load::host_artifacts(a.out);
        for h in &mut report.hosts {
            h.artifacts = artifacts.get(&h.name).cloned().unwrap_or_default();
        }
    }
    if json_out {
        print_json(&json(&report), o)?;
    } else {
        if !term.quiet {
            // Gathered: standard output is line-buffered, and a large
            // fleet's report is a line per host.
            let mut out = io::BufWriter::with_capacity(1 << 16, &mut *o.out);
            write_human(&report, term, &mut out)?;
            out.flush()?;
        }
        for note in &report.notes {
            writeln!(o.err, "note: {note}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(a: &Args, term: &Term, o: &mut Output) -> io::Result<ExitCode> {
    let json_out = a.format == Format::Json;
    let fail = |e: crate::Error, o: &mut Output| {
        if json_out {
            print_json(&json!({"status": "error", "error": e.to_string()}), o)?;
            Ok(ExitCode::from(2))
        } else {
            super::fail(e, term, o)
        }
    };
    let source = match crate::load::spec(a.spec) {
        Ok(s) => s,
        Err(e) => return fail(e, o),
    };
    if let Some(mut report) = recorded(a, &source) {
        report.kept = report.hosts.len();
        if !json_out {
            super::print_diags(&report.warnings, Some(&source), Format::Human, term, o)?;
        }
        return finish(report, a, term, o);
    }
    // The role tree and user files come first: with the previous output's
    // fingerprints, they tell which clusters validation need not plan again.
    let roles = match a.roles {
        Some(dir) => crate::load::roles(dir),
        None => Ok(crate::load::RoleTree::embedded()),
    };
    let overlays =
        crate::load::overlays(&crate::load::spec_dir(a.spec).join(crate::load::OVERLAYS));
    let (roles, overlays) = match (roles, overlays) {
        (Ok(r), Ok(o)) => (r, o),
        (Err(e), _) | (_, Err(e)) => return fail(e, o),
    };
    // A killed build's staging goes, and a previous output it had moved
    // aside comes back, before that output is read.
    if let Err(e) = crate::write::recover(a.out) {
        return fail(e, o);
    }
    // A spare core prepares what validation needs while this one parses
    // the spec: the schema first, which the parse needs within
    // milliseconds, then the previous output's state, which the comparison
    // with it needs once the fleet is resolved, then the templates, which
    // the first host rendered needs. Without that core, this thread reads
    // the state itself.
    let (previous_to, previous_from) = std::sync::mpsc::sync_channel(1);
    let out = a.out.to_path_buf();
    crate::render::templates::compile_ahead(roles.clone(), move || {
        crate::schema::prepare();
        let _ = previous_to.send(crate::load::previous_output(&out));
    });
    let invalid = |d: Vec<diag::Diagnostic>, o: &mut Output| {
        if json_out {
            print_json(
                &json!({"status": "invalid", "diagnostics": diags_json(&d)}),
                o,
            )?;
        } else {
            super::print_diags(&d, Some(&source), Format::Human, term, o)?;
        }
        Ok(ExitCode::from(1))
    };
    let mut validated = match crate::ops::parse_and_resolve(source.clone(), a.strict) {
        Ok(v) => v,
        Err(d) => return invalid(d, o),
    };
    let previous = previous_from
        .recv()
        .unwrap_or_else(|_| crate::load::previous_output(a.out));
    // Made here for the comparison, the fingerprints serve the build too.
    let fingerprints = std::sync::OnceLock::new();
    let unchanged = |fleet: &crate::model::Fleet| match &previous {
        Some(prev) => {
            let fps = fingerprints.get_or_init(|| {
                crate::ops::fingerprints(
                    fleet,
                    &crate::ops::RenderInputs {
                        roles: &roles,
                        mapping: &Default::default(),
                        overlays: &overlays,
                    },
                )
            });
            crate::ops::unchanged_clusters(fleet, fps, prev)
        }
        None => Default::default(),
    };
    let spec_dir = crate::load::spec_dir(a.spec);
    let require_secrets = a.require_secrets || a.strict;
    // The secrets are read and digested, and the inputs hashed, on a core
    // of their own while this one runs the semantic checks: each is a
    // tenth of a one-host rebuild. The checks stay on this thread, whose
    // memory freed by parsing they reuse. A fleet of more than
    // `READ_BESIDE_HOSTS` reads them after the checks instead: its peak is
    // here, and its secret references are megabytes, and only for a spec
    // the checks accept. Beside them, a spec they reject throws the
    // secrets read away, unused.
    let read_secrets = || {
        // The references go as soon as they are labelled.
        let mut labels = Vec::new();
        let read =
            crate::secret_ops::read_and_check(&validated, a.spec, a.secrets_env, require_secrets)
                .map(|(refs, reading, diags)| {
                    labels = secret_labels(&refs);
                    (reading, diags)
                });
        let key = crate::ops::inputs_key(
            &source,
            &roles,
            &overlays,
            &Default::default(),
            a.strict,
            require_secrets,
            a.embed_secrets,
        );
        let digest = crate::load::secret_digest(&labels, &spec_dir, a.secrets_env);
        (read, labels, key, digest)
    };
    let beside = validated.fleet.hosts().count() <= READ_BESIDE_HOSTS;
    let checked = std::thread::scope(|s| -> io::Result<_> {
        // The spare core also masks the text the warnings show: it is the
        // spec scanned again, a few milliseconds of a rebuild.
        let reading = beside.then(|| {
            s.spawn(|| {
                let read = read_secrets();
                (
                    read,
                    (!json_out).then(|| crate::spec::redact::redacted(&source)),
                )
            })
        });
        // A rejected spec leaves a reading thread to the scope's join.
        let warnings = match crate::ops::check_resolved(&validated, a.strict, &unchanged) {
            Ok(w) => w,
            Err(d) => return Ok(Err(d)),
        };
        let read = match reading {
            Some(thread) => {
                let (read, shown) = thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                if let Some(shown) = shown {
                    super::print_redacted_diags(&warnings, Some(&shown), term, o)?;
                }
                read
            }
            None => {
                if !json_out {
                    super::print_diags(&warnings, Some(&source), Format::Human, term, o)?;
                }
                read_secrets()
            }
        };
        Ok(Ok((warnings, read)))
    })?;
    let fingerprints = fingerprints.into_inner();
    let (read, labels, key, (secrets_digest, any_secret)) = match checked {
        Ok((warnings, read)) => {
            validated.warnings = warnings;
            read
        }
        Err(d) => return invalid(d, o),
    };
    // Every diagnostic that needs a position has been made: the table of
    // every node's position, tens of megabytes for a large fleet, goes
    // before the build reaches its own peak.
    validated.parsed.spans = Default::default();
    // Likewise the typed spec: its secret references are read (the labels
    // above, the values in `read`), and the build works from the resolved
    // fleet. A large fleet's clusters are megabytes of it.
    validated.parsed.spec.clusters = Vec::new();
    let inputs = match crate::ops::secret_values(read, &validated) {
        Ok(secrets) => crate::ops::BuildInputs {
            roles,
            secrets,
            mapping: Default::default(),
            overlays,
        },
        Err(crate::ops::Failure::Error(e)) => return fail(e, o),
        Err(crate::ops::Failure::Invalid(_, d)) => return invalid(d, o),
    };
    let fleet = &validated.fleet;
    let previous_closures = match &previous {
        Some(prev) => prev.closures.clone(),
        None => previous_closures(a.out),
    };
    let bar = super::term::progress(term, fleet.hosts().count());
    let describe = |b: &crate::ops::BuildReport, w: &mut dyn io::Write| {
        let r = RecordOut {
            inputs: &key,
            secrets: &labels,
            secrets_digest: (!any_secret).then_some(secrets_digest.as_str()),
            clusters: fleet.clusters.len(),
            artifacts: b.artifacts,
            hosts: RecordHosts {
                fleet,
                closures: &b.closures,
            },
            notes: &b.notes,
            missing_secrets: &b.missing_secrets,
            diagnostics: RecordDiagnostics(&validated.warnings),
        };
        serde_json::to_writer(w, &r).map_err(io::Error::other)
    };
    let record = crate::ops::Record {
        secrets_digest: any_secret.then(|| secrets_digest.clone()),
        describe: &describe,
    };
    let options = crate::ops::BuildOptions {
        embed_secrets: a.embed_secrets,
    };
    let built = crate::ops::build_to_dir_with(
        &validated,
        &inputs,
        options,
        a.out,
        &|_| bar.inc(1),
        Some(&record),
        crate::ops::Known {
            previous,
            fingerprints,
        },
    );
    bar.finish_and_clear();
    let (mut built, leftover) = match built {
        Ok(r) => r,
        Err(e) => return fail(e, o),
    };
    let closures = std::mem::take(&mut built.closures);
    let notes = std::mem::take(&mut built.notes);
    let missing_secrets = std::mem::take(&mut built.missing_secrets);
    let (public_artifacts, rendered, kept, written) =
        (built.artifacts, built.rendered, built.kept, built.changed);
    // The artifacts' sums, the fingerprints and the secret inputs are
    // written; at 30,000 hosts they are tens of megabytes the report does
    // not need beside its own.
    drop(built);
    drop(inputs);
    let warnings = std::mem::take(&mut validated.warnings);
    let hosts = fleet
        .hosts()
        .map(|(c, s, h)| {
            let closure = closures.get(&h.name).cloned().unwrap_or_default();
            HostReport {
                change: Change::of(&previous_closures, &h.name, &closure),
                name: h.name.clone(),
                cluster: c.name.clone(),
                site: s.name.clone(),
                closure,
                artifacts: Vec::new(),
            }
        })
        .collect();
    drop((closures, previous_closures));
    let report = Report {
        out: a.out.display().to_string(),
        clusters: fleet.clusters.len(),
        hosts,
        public_artifacts,
        rendered,
        kept,
        written,
        notes,
        missing_secrets,
        warnings,
    };
    // What the commit replaced is removed while the report is printed; a
    // JSON report is one document, printed once that removal has ended.
    if json_out {
        if let Err(e) = leftover.wait() {
            return fail(e, o);
        }
        return finish(report, a, term, o);
    }
    let printed = finish(report, a, term, o)?;
    match leftover.wait() {
        Ok(()) => Ok(printed),
        Err(e) => fail(e, o),
    }
}
