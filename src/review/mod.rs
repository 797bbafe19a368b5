//! Review and day two: `pgimg diff` (what a change means for a running
//! cluster), `pgimg verify` (an output, or its HTTP copy, against its
//! manifest) and `pgimg build --check`.
//!
//! Outside the pure pipeline, like `lab`: this module reads output
//! directories, runs `git` to read a spec at a revision, and talks HTTP.
//! It never writes a file. Secrets are never compared: a spec side is built
//! without them and a directory side's `secrets/` is skipped, so no secret
//! value can reach a diff.
//!
//! - `diff.rs`: two trees → per-host and per-cluster file changes.
//! - `classify.rs`: each change → actions (reinstall, reload, restart, DCS patch, topology).
//! - `effects.rs`: the data those rules read (file → unit, kickstart commands, parameter contexts).
//! - `archive.rs`: tarballs by entries, embedded overlays as one line.
//! - `format.rs`: text, Markdown, JSON.
//! - `verify.rs`, `http.rs`: `pgimg verify`.

pub(crate) mod archive;
pub mod classify;
pub mod diff;
pub(crate) mod effects;
pub mod format;
pub(crate) mod http;
pub mod verify;

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::Error;
use crate::cli::{DiffArgs, DiffFormat, Format, VerifyArgs};
use crate::commands::Output;
use crate::diag::{self, Diagnostic};
use crate::ops::{Failure, Validated};
use crate::render::manifest::is_public;
use crate::render::{Artifact, ArtifactTree};
use crate::source::SourceFile;
use diff::Tree;

/// Exit codes of `diff`, `verify` and `build --check`.
pub const SAME: u8 = 0;
pub const DIFFERENT: u8 = 1;
pub const FAILED: u8 = 2;

/// The one call into the library's build: embedded (or given) roles, the
/// user's `overlays/` beside a spec read from a file (none for a spec at a
/// git revision), no secrets, no address mapping.
pub fn build_in_memory(
    v: &Validated,
    roles: Option<&Path>,
    spec_file: Option<&Path>,
) -> Result<ArtifactTree, Error> {
    let inputs = crate::ops::BuildInputs {
        roles: match roles {
            Some(dir) => crate::load::roles(dir)?,
            None => crate::load::RoleTree::embedded(),
        },
        secrets: Default::default(),
        mapping: Default::default(),
        overlays: match spec_file {
            Some(f) => {
                crate::load::overlays(&crate::load::spec_dir(f).join(crate::load::OVERLAYS))?
            }
            None => Default::default(),
        },
    };
    crate::ops::build(v, &inputs)
}

fn print_diags(
    diags: &[Diagnostic],
    source: &SourceFile,
    format: Format,
    o: &mut Output,
) -> io::Result<()> {
    // Lines are shown with every plain value in a secret slot masked.
    let shown = crate::spec::redact::redacted(source);
    for d in diags {
        match format {
            Format::Human => write!(o.err, "{}", diag::render_human(d, Some(&shown)))?,
            Format::Json => writeln!(o.out, "{}", diag::render_json(d))?,
        }
    }
    Ok(())
}

fn public(tree: ArtifactTree) -> BTreeMap<String, Artifact> {
    tree.files
        .into_iter()
        .filter(|(p, _)| is_public(p))
        .collect()
}

/// Builds spec text in memory.
fn build_text(
    source: SourceFile,
    roles: Option<&Path>,
    spec_file: Option<&Path>,
    strict: bool,
) -> Result<BTreeMap<String, Artifact>, Failure> {
    let validated = match crate::ops::validate(source.clone(), strict) {
        Ok(v) => v,
        Err(d) => return Err(Failure::Invalid(source, d)),
    };
    Ok(public(build_in_memory(&validated, roles, spec_file)?))
}

/// The public files of an output directory (`secrets/` and the marker left out).
fn read_dir_tree(dir: &Path) -> Result<BTreeMap<String, Artifact>, Error> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.map_err(|e| Error::Input(format!("walking {}: {e}", dir.display())))?;
        if !e.file_type().is_file() {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap_or(e.path())
            .to_string_lossy()
            .into_owned();
        if rel == crate::write::MARKER || rel == crate::state::STATE_FILE || !is_public(&rel) {
            continue;
        }
        let bytes = std::fs::read(e.path()).map_err(|err| Error::io("reading", e.path(), err))?;
        let mode = e
            .metadata()
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        out.insert(rel, Artifact { bytes, mode });
    }
    Ok(out)
}

fn git(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| Error::Input(format!("running git: {e}")))?;
    if !out.status.success() {
        return Err(Error::Input(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The merge base of HEAD and the repository's main branch.
fn default_base(dir: &Path) -> Result<String, Error> {
    for main in ["main", "origin/main", "master", "origin/master"] {
        if git(
            dir,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{main}^{{commit}}"),
            ],
        )
        .is_ok()
        {
            return Ok(git(dir, &["merge-base", "HEAD", main])?.trim().to_string());
        }
    }
    Err(Error::Input(
        "no main branch (main, origin/main, master) to take the merge base with: pass --base REV"
            .into(),
    ))
}

/// A spec file's text at a git revision, read with `git show REV:./FILE` in its directory.
fn spec_at(rev: &str, spec: &Path) -> Result<SourceFile, Error> {
    let dir = crate::load::spec_dir(spec);
    let file = spec
        .file_name()
        .ok_or_else(|| Error::Input(format!("{}: not a file name", spec.display())))?
        .to_string_lossy()
        .into_owned();
    let text = git(&dir, &["show", &format!("{rev}:./{file}")])?;
    Ok(SourceFile::new(format!("{rev}:{}", spec.display()), text))
}

fn load_side(arg: &str, roles: Option<&Path>) -> Result<Tree, Failure> {
    let path = PathBuf::from(arg);
    let files = if path.is_dir() {
        read_dir_tree(&path)?
    } else if path.is_file() {
        build_text(crate::load::spec(&path)?, roles, Some(&path), false)?
    } else if let Some((rev, file)) = arg.split_once(':')
        && !rev.is_empty()
        && !file.is_empty()
    {
        build_text(spec_at(rev, Path::new(file))?, roles, None, false)?
    } else {
        return Err(Failure::Error(Error::Input(format!(
            "{arg}: no such spec file or output directory (a spec at a git revision is `REV:PATH`)"
        ))));
    };
    Ok(Tree {
        label: arg.to_string(),
        files,
    })
}

/// A spec built in memory as one side of a diff, labelled as given.
pub fn spec_tree(spec: &Path, label: &str, roles: Option<&Path>) -> Result<Tree, Error> {
    let source = crate::load::spec(spec)?;
    let validated = crate::ops::validate(source, false).map_err(|d| {
        Error::Input(format!(
            "{}: {} diagnostic(s), the first: {}; run `pgimg validate`",
            spec.display(),
            d.len(),
            d.first().map(|x| x.message.as_str()).unwrap_or("")
        ))
    })?;
    Ok(Tree {
        label: label.to_string(),
        files: public(build_in_memory(&validated, roles, Some(spec))?),
    })
}

/// Prints why a side could not be had; a spec with errors is an error of
/// `diff` (exit 2) but an invalid spec of `build --check` (exit 1).
fn fail(f: Failure, invalid_code: u8, o: &mut Output) -> io::Result<ExitCode> {
    match f {
        Failure::Invalid(source, d) => {
            print_diags(&d, &source, Format::Human, o)?;
            Ok(ExitCode::from(invalid_code))
        }
        Failure::Error(e) => {
            writeln!(o.err, "error: {e}")?;
            Ok(ExitCode::from(FAILED))
        }
    }
}

fn sides(args: &DiffArgs) -> Result<(Tree, Tree), Failure> {
    let roles = args.roles.as_deref();
    match args.sides.as_slice() {
        [old, new] => {
            if args.base.is_some() {
                return Err(Failure::Error(Error::Input(
                    "--base applies only when one side is given".into(),
                )));
            }
            Ok((load_side(old, roles)?, load_side(new, roles)?))
        }
        [new] => {
            let spec = Path::new(new);
            if !spec.is_file() {
                return Err(Failure::Error(Error::Input(format!(
                    "{new}: with one side, it must be a spec file (OLD is the same spec at --base)"
                ))));
            }
            let rev = match &args.base {
                Some(r) => r.clone(),
                None => default_base(&crate::load::spec_dir(spec))?,
            };
            let old = spec_at(&rev, spec)?;
            let label = old.name.clone();
            let old = Tree {
                label,
                files: build_text(old, roles, None, false)?,
            };
            Ok((old, load_side(new, roles)?))
        }
        _ => Err(Failure::Error(Error::Input(
            "expected OLD NEW or NEW".into(),
        ))),
    }
}

/// `pgimg diff`: 0 nothing differs, 1 something does, 2 error.
pub fn diff(args: &DiffArgs, o: &mut Output) -> io::Result<ExitCode> {
    let (old, new) = match sides(args) {
        Ok(s) => s,
        Err(f) => return fail(f, FAILED, o),
    };
    let report = diff::compare(&old, &new);
    let text = match args.format {
        DiffFormat::Text => format::text(&report, true),
        DiffFormat::Markdown => format::markdown(&report),
        DiffFormat::Json => format::json(&report),
    };
    o.out.write_all(text.as_bytes())?;
    Ok(ExitCode::from(if report.is_empty() {
        SAME
    } else {
        DIFFERENT
    }))
}

/// `pgimg verify`: 0 every artifact matches, 1 something differs, 2 error.
pub fn verify(args: &VerifyArgs, o: &mut Output) -> io::Result<ExitCode> {
    let result = match &args.url {
        Some(url) => verify::verify_url(url, args.out.as_deref()),
        None => verify::verify_dir(args.out.as_deref().unwrap_or(Path::new("out"))),
    };
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => return fail(Failure::Error(e), FAILED, o),
    };
    for f in &outcome.findings {
        writeln!(o.out, "{f}")?;
    }
    for n in &outcome.notes {
        writeln!(o.err, "note: {n}")?;
    }
    let where_ = match &args.url {
        Some(u) => u.clone(),
        None => args
            .out
            .as_deref()
            .unwrap_or(Path::new("out"))
            .display()
            .to_string(),
    };
    if outcome.findings.is_empty() {
        writeln!(
            o.out,
            "verified {} artifacts in {where_}: all match manifest.json",
            outcome.checked
        )?;
        Ok(ExitCode::from(SAME))
    } else {
        writeln!(
            o.out,
            "{} problem{} in {where_} ({} artifacts checked)",
            outcome.findings.len(),
            if outcome.findings.len() == 1 { "" } else { "s" },
            outcome.checked
        )?;
        Ok(ExitCode::from(DIFFERENT))
    }
}

/// `pgimg build --check`: builds in memory and compares with the existing
/// output; 0 up to date, 1 differs (summary printed) or spec invalid, 2 error.
/// Writes nothing.
pub fn build_check(
    spec: &Path,
    out: &Path,
    roles: Option<&Path>,
    format: Format,
    strict: bool,
    o: &mut Output,
) -> io::Result<ExitCode> {
    let fresh = match crate::load::spec(spec)
        .map_err(Failure::Error)
        .and_then(|s| build_text(s, roles, Some(spec), strict))
    {
        Ok(f) => f,
        Err(Failure::Invalid(source, d)) => {
            print_diags(&d, &source, format, o)?;
            return Ok(ExitCode::from(DIFFERENT));
        }
        Err(f) => return fail(f, DIFFERENT, o),
    };
    let existing = if out.is_dir() {
        match read_dir_tree(out) {
            Ok(f) => f,
            Err(e) => return fail(Failure::Error(e), DIFFERENT, o),
        }
    } else {
        BTreeMap::new()
    };
    let report = diff::compare(
        &Tree {
            label: out.display().to_string(),
            files: existing,
        },
        &Tree {
            label: spec.display().to_string(),
            files: fresh,
        },
    );
    if report.is_empty() {
        writeln!(
            o.out,
            "{} is up to date with {}",
            out.display(),
            spec.display()
        )?;
        Ok(ExitCode::from(SAME))
    } else {
        o.out.write_all(format::text(&report, false).as_bytes())?;
        writeln!(
            o.err,
            "error: {} is not what {} builds; run `pgimg build` and review `pgimg diff`",
            out.display(),
            spec.display()
        )?;
        Ok(ExitCode::from(DIFFERENT))
    }
}
