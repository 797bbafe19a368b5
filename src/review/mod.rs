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

pub mod archive;
pub mod classify;
pub mod diff;
pub mod effects;
pub mod format;
pub mod http;
pub mod verify;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{DiffArgs, DiffFormat, Format, VerifyArgs};
use crate::diag::{self, Diagnostic};
use crate::render::manifest::is_public;
use crate::render::{Artifact, ArtifactTree};
use crate::source::SourceFile;
use crate::{Error, Validated};
use diff::Tree;

/// Exit codes of `diff`, `verify` and `build --check`.
pub const SAME: u8 = 0;
pub const DIFFERENT: u8 = 1;
pub const FAILED: u8 = 2;

/// The one call into the library's build: embedded (or given) roles, no
/// secrets, no address mapping.
pub fn build_in_memory(v: &Validated, roles: Option<&Path>) -> Result<ArtifactTree, Error> {
    let inputs = crate::BuildInputs {
        roles: match roles {
            Some(dir) => crate::load::roles(dir)?,
            None => crate::render::templates::RoleTree::embedded(),
        },
        secrets: Default::default(),
        mapping: Default::default(),
    };
    crate::build(v, &inputs)
}

/// Why a side could not be had: a tool error, or a spec with errors (already printed).
enum Failure {
    Error(Error),
    Invalid,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

fn print_diags(diags: &[Diagnostic], source: &SourceFile, format: Format) {
    let mut err = std::io::stderr().lock();
    let mut out = std::io::stdout().lock();
    for d in diags {
        let _ = match format {
            Format::Human => write!(err, "{}", diag::render_human(d, Some(source))),
            Format::Json => writeln!(out, "{}", diag::render_json(d)),
        };
    }
}

fn public(tree: ArtifactTree) -> BTreeMap<String, Artifact> {
    tree.files
        .into_iter()
        .filter(|(p, _)| is_public(p))
        .collect()
}

/// Builds spec text in memory; diagnostics of an invalid spec are printed.
fn build_text(
    source: SourceFile,
    roles: Option<&Path>,
    strict: bool,
    format: Format,
) -> Result<BTreeMap<String, Artifact>, Failure> {
    let validated = match crate::validate(source.clone(), strict) {
        Ok(v) => v,
        Err(d) => {
            print_diags(&d, &source, format);
            return Err(Failure::Invalid);
        }
    };
    Ok(public(build_in_memory(&validated, roles)?))
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
        if rel == crate::write::MARKER || !is_public(&rel) {
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
        build_text(crate::load::spec(&path)?, roles, false, Format::Human)?
    } else if let Some((rev, file)) = arg.split_once(':')
        && !rev.is_empty()
        && !file.is_empty()
    {
        build_text(spec_at(rev, Path::new(file))?, roles, false, Format::Human)?
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
    let validated = crate::validate(source, false).map_err(|d| {
        Error::Input(format!(
            "{}: {} diagnostic(s); run `pgimg validate`",
            spec.display(),
            d.len()
        ))
    })?;
    Ok(Tree {
        label: label.to_string(),
        files: public(build_in_memory(&validated, roles)?),
    })
}

fn fail(e: Failure) -> u8 {
    if let Failure::Error(e) = e {
        eprintln!("error: {e}");
    }
    FAILED
}

/// `pgimg diff`: 0 nothing differs, 1 something does, 2 error.
pub fn diff(args: &DiffArgs) -> u8 {
    let roles = args.roles.as_deref();
    let sides = (|| -> Result<(Tree, Tree), Failure> {
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
                    files: build_text(old, roles, false, Format::Human)?,
                };
                Ok((old, load_side(new, roles)?))
            }
            _ => Err(Failure::Error(Error::Input(
                "expected OLD NEW or NEW".into(),
            ))),
        }
    })();
    let (old, new) = match sides {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let report = diff::compare(&old, &new);
    let text = match args.format {
        DiffFormat::Text => format::text(&report, true),
        DiffFormat::Markdown => format::markdown(&report),
        DiffFormat::Json => format::json(&report),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if report.is_empty() { SAME } else { DIFFERENT }
}

/// `pgimg verify`: 0 every artifact matches, 1 something differs, 2 error.
pub fn verify(args: &VerifyArgs) -> u8 {
    let result = match &args.url {
        Some(url) => verify::verify_url(url, args.out.as_deref()),
        None => verify::verify_dir(args.out.as_deref().unwrap_or(Path::new("out"))),
    };
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return fail(Failure::Error(e)),
    };
    for f in &outcome.findings {
        println!("{f}");
    }
    for n in &outcome.notes {
        eprintln!("note: {n}");
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
        println!(
            "verified {} artifacts in {where_}: all match manifest.json",
            outcome.checked
        );
        SAME
    } else {
        println!(
            "{} problem{} in {where_} ({} artifacts checked)",
            outcome.findings.len(),
            if outcome.findings.len() == 1 { "" } else { "s" },
            outcome.checked
        );
        DIFFERENT
    }
}

/// `pgimg build --check`: builds in memory and compares with the existing
/// output; 0 up to date, 1 differs (summary printed) or spec invalid, 2 error.
pub fn build_check(
    spec: &Path,
    out: &Path,
    roles: Option<&Path>,
    format: Format,
    strict: bool,
) -> u8 {
    let fresh = match crate::load::spec(spec)
        .map_err(Failure::Error)
        .and_then(|s| build_text(s, roles, strict, format))
    {
        Ok(f) => f,
        Err(Failure::Invalid) => return DIFFERENT,
        Err(e) => return fail(e),
    };
    let existing = if out.is_dir() {
        match read_dir_tree(out) {
            Ok(f) => f,
            Err(e) => return fail(Failure::Error(e)),
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
        println!("{} is up to date with {}", out.display(), spec.display());
        SAME
    } else {
        print!("{}", format::text(&report, false));
        eprintln!(
            "error: {} is not what {} builds; run `pgimg build` and review `pgimg diff`",
            out.display(),
            spec.display()
        );
        DIFFERENT
    }
}
