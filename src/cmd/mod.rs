//! What each command does, beyond the pipeline: reading its inputs through
//! `load`, printing, and the exit code. `main.rs` only dispatches here.
//! Exit codes: 0 done, 1 spec invalid, 2 usage or operational error.

pub mod build;
pub mod graph;
pub mod init;
pub mod manual;
pub mod show;
pub mod term;
pub mod version;

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::Format;
use crate::diag::{self, Diagnostic};
use crate::source::SourceFile;
use term::{Term, plural};

/// Prints diagnostics: rustc-style on stderr (coloured when the terminal
/// allows) with a count, or JSON lines on stdout.
pub fn print_diags(diags: &[Diagnostic], source: Option<&SourceFile>, format: Format, term: &Term) {
    let mut err = std::io::stderr().lock();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for d in diags {
                let _ = writeln!(out, "{}", diag::render_json(d));
            }
        }
        Format::Human => {
            let _ = write!(err, "{}", term.diagnostics(&human(diags, source)));
        }
    }
}

/// Diagnostics as people read them, with the count of errors and warnings.
pub fn human(diags: &[Diagnostic], source: Option<&SourceFile>) -> String {
    let mut text: String = diags
        .iter()
        .map(|d| diag::render_human(d, source))
        .collect();
    if !diags.is_empty() {
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let warnings = diags.len() - errors;
        text.push_str(&format!(
            "{errors} error{}, {warnings} warning{}\n",
            plural(errors),
            plural(warnings)
        ));
    }
    text
}

/// An operational error: the message on stderr, exit 2.
pub fn fail(e: crate::Error, term: &Term) -> ExitCode {
    eprint!("{}", term.diagnostics(&format!("error: {e}\n")));
    ExitCode::from(2)
}

/// Loads and validates a spec for the commands that only read it (show,
/// resolve, graph): diagnostics are printed and turn into exit code 1.
fn validated(spec: &Path, term: &Term) -> Result<crate::Validated, ExitCode> {
    let source = crate::load::spec(spec).map_err(|e| fail(e, term))?;
    match crate::validate(source.clone(), false) {
        Ok(v) => {
            print_diags(&v.warnings, Some(&source), Format::Human, term);
            Ok(v)
        }
        Err(d) => {
            print_diags(&d, Some(&source), Format::Human, term);
            Err(ExitCode::from(1))
        }
    }
}

/// `pgimg validate`: every diagnostic, then one line saying what was found valid.
pub fn validate(spec: &Path, format: Format, strict: bool, term: &Term) -> ExitCode {
    let source = match crate::load::spec(spec) {
        Ok(s) => s,
        Err(e) => return fail(e, term),
    };
    match crate::validate(source.clone(), strict) {
        Ok(v) => {
            print_diags(&v.warnings, Some(&source), format, term);
            if format == Format::Human && !term.quiet {
                println!("{}", term.good(&summary(&source.name, &v)));
            }
            ExitCode::SUCCESS
        }
        Err(d) => {
            print_diags(&d, Some(&source), format, term);
            ExitCode::from(1)
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
pub fn init(path: &Path, starter: init::Starter, term: &Term) -> ExitCode {
    if path.as_os_str() == crate::load::STDIN {
        print!("{}", init::render(starter, "pgimg.yml"));
        return ExitCode::SUCCESS;
    }
    let name = path.display().to_string();
    let text = init::render(starter, &name);
    if let Err(e) = crate::write::new_file(path, text.as_bytes()) {
        return fail(e, term);
    }
    if !term.quiet {
        println!(
            "{}",
            term.good(&format!("wrote {name}; next: pgimg validate {name}"))
        );
    }
    ExitCode::SUCCESS
}

/// `pgimg show`.
pub fn show(spec: &Path, term: &Term) -> ExitCode {
    let v = match validated(spec, term) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match show::show(&v) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, term),
    }
}

/// `pgimg resolve`.
pub fn resolve(spec: &Path, host: &str, term: &Term) -> ExitCode {
    let v = match validated(spec, term) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match show::resolve(&v, host) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, term),
    }
}

/// `pgimg graph`.
pub fn graph(spec: &Path, format: crate::cli::GraphFormat, term: &Term) -> ExitCode {
    match validated(spec, term) {
        Ok(v) => {
            print!("{}", graph::render(&v.fleet, format));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `pgimg manual`.
pub fn manual(format: crate::cli::ManualFormat) -> ExitCode {
    let _ = std::io::stdout().write_all(&manual::render(format));
    ExitCode::SUCCESS
}
