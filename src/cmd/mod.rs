//! The commands of the first hour and the hundredth day (`init`, `validate`,
//! `build`, `show`, `resolve`, `graph`, `manual`) and the output conventions
//! they share (`term`). `commands::run` dispatches here. Each prints through
//! `Output`, so a reader that goes away ends the command quietly.
//! Exit codes: 0 done, 1 spec invalid, 2 usage or operational error.

pub(crate) mod build;
pub(crate) mod graph;
pub mod init;
pub mod manual;
pub mod show;
pub mod term;
pub mod version;

use std::io::{self, Write as _};
use std::path::Path;
use std::process::ExitCode;

use crate::commands::Output;

use crate::cli::Format;
use crate::diag::{self, Diagnostic};
use crate::source::SourceFile;
use term::{Term, plural};

/// Prints diagnostics: rustc-style on stderr (coloured when the terminal
/// allows) with a count, or JSON lines on stdout.
pub fn print_diags(
    diags: &[Diagnostic],
    source: Option<&SourceFile>,
    format: Format,
    term: &Term,
    o: &mut Output,
) -> io::Result<()> {
    match format {
        Format::Json => {
            for d in diags {
                writeln!(o.out, "{}", diag::render_json(d))?;
            }
        }
        // Lines are shown with every plain value in a secret slot masked.
        Format::Human if !diags.is_empty() => {
            let shown = source.map(crate::spec::redact::redacted);
            write_shown(diags, shown.as_ref(), term, &mut o.err)?
        }
        Format::Human => {}
    }
    Ok(())
}

/// [`print_diags`] in human form, given the spec's text already redacted
/// ([`crate::spec::redact::redacted`]): `pgimg build` has it made on a
/// spare core while the checks run.
pub fn print_redacted_diags(
    diags: &[Diagnostic],
    shown: Option<&SourceFile>,
    term: &Term,
    o: &mut Output,
) -> io::Result<()> {
    write_shown(diags, shown, term, &mut o.err)
}

/// Diagnostics as people read them, with the count of errors and warnings,
/// their lines from the redacted text `shown`, one diagnostic at a time:
/// a large fleet's thousands of warnings are never all in memory as text.
fn write_shown(
    diags: &[Diagnostic],
    shown: Option<&SourceFile>,
    term: &Term,
    out: &mut dyn io::Write,
) -> io::Result<()> {
    if diags.is_empty() {
        return Ok(());
    }
    // Standard error is unbuffered: a write per diagnostic would be a
    // system call each, and a large fleet has thousands.
    let out = &mut io::BufWriter::with_capacity(64 * 1024, out);
    for d in diags {
        out.write_all(term.diagnostics(&diag::render_human(d, shown)).as_bytes())?;
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let count = format!(
        "{errors} error{}, {warnings} warning{}\n",
        plural(errors),
        plural(warnings)
    );
    out.write_all(term.diagnostics(&count).as_bytes())?;
    out.flush()
}

/// An operational error: the message on stderr, exit 2.
pub fn fail(e: crate::Error, term: &Term, o: &mut Output) -> io::Result<ExitCode> {
    write!(o.err, "{}", term.diagnostics(&format!("error: {e}\n")))?;
    Ok(ExitCode::from(2))
}

/// Loads and validates a spec for the commands that only read it (show,
/// resolve, graph): diagnostics are printed and turn into exit code 1.
fn validated(
    spec: &Path,
    term: &Term,
    o: &mut Output,
) -> io::Result<Result<crate::Validated, ExitCode>> {
    let source = match crate::load::spec(spec) {
        Ok(s) => s,
        Err(e) => return fail(e, term, o).map(Err),
    };
    match crate::validate(source.clone(), false) {
        Ok(v) => {
            print_diags(&v.warnings, Some(&source), Format::Human, term, o)?;
            Ok(Ok(v))
        }
        Err(d) => {
            print_diags(&d, Some(&source), Format::Human, term, o)?;
            Ok(Err(ExitCode::from(1)))
        }
    }
}

/// `pgimg validate`: every diagnostic, then one line saying what was found valid.
pub fn validate(
    spec: &Path,
    format: Format,
    strict: bool,
    term: &Term,
    o: &mut Output,
) -> io::Result<ExitCode> {
    let source = match crate::load::spec(spec) {
        Ok(s) => s,
        Err(e) => return fail(e, term, o),
    };
    match crate::validate(source.clone(), strict) {
        Ok(v) => {
            print_diags(&v.warnings, Some(&source), format, term, o)?;
            if format == Format::Human && !term.quiet {
                writeln!(o.out, "{}", term.good(&summary(&source.name, &v)))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(d) => {
            print_diags(&d, Some(&source), format, term, o)?;
            Ok(ExitCode::from(1))
        }
    }
}

/// `spec.yml is valid: 1 cluster, 2 sites, 8 hosts (1 warning)`.
pub fn summary(name: &str, v: &crate::Validated) -> String {
    let clusters = v.fleet.clusters.len();
    let sites: usize = v.fleet.clusters.iter().map(|c| c.sites.len()).sum();
    let hosts = v.fleet.hosts().count();
    let warnings = match v.warnings.len() {
        0 => String::new(),
        n => format!(" ({n} warning{})", plural(n)),
    };
    format!(
        "{name} is valid: {clusters} cluster{}, {sites} site{}, {hosts} host{}{warnings}",
        plural(clusters),
        plural(sites),
        plural(hosts)
    )
}

/// `pgimg init`: the starter spec into a new file, or on stdout for `-`.
pub fn init(
    path: &Path,
    starter: init::Starter,
    term: &Term,
    o: &mut Output,
) -> io::Result<ExitCode> {
    if path.as_os_str() == crate::load::STDIN {
        o.out
            .write_all(init::render(starter, "pgimg.yml").as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let name = path.display().to_string();
    let text = init::render(starter, &name);
    if let Err(e) = crate::write::new_file(path, text.as_bytes()) {
        return fail(e, term, o);
    }
    if !term.quiet {
        writeln!(
            o.out,
            "{}",
            term.good(&format!("wrote {name}; next: pgimg validate {name}"))
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The commands that read a valid spec and print one text: `show`, `resolve`, `graph`.
pub fn print_view(
    spec: &Path,
    view: impl FnOnce(&crate::Validated) -> Result<String, crate::Error>,
    term: &Term,
    o: &mut Output,
) -> io::Result<ExitCode> {
    let v = match validated(spec, term, o)? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    match view(&v) {
        Ok(text) => {
            o.out.write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => fail(e, term, o),
    }
}

/// `pgimg manual`.
pub fn manual(format: crate::cli::ManualFormat, o: &mut Output) -> io::Result<ExitCode> {
    o.out.write_all(&manual::render(format))?;
    Ok(ExitCode::SUCCESS)
}
