//! The commands behind `main`: each runs `ops`, prints, and returns the exit
//! code — 0 done, 1 the spec is invalid, 2 usage or operational error.
//!
//! Output goes through `Output`, whose writes fail with `BrokenPipe` when the
//! reader has gone (`pgimg build … | head`): `main` then ends quietly, as
//! ripgrep does, instead of panicking like `println!`.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Command, Format, LabAction, SecretsAction};
use crate::diag::{self, Diagnostic};
use crate::ops::{self, Failure};
use crate::source::SourceFile;
use crate::{Error, lab, schema};

/// Where a command prints: stdout for results, stderr for diagnostics and notes.
pub struct Output<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// Runs the parsed command line.
pub fn run(cli: Cli, o: &mut Output) -> io::Result<ExitCode> {
    match cli.command {
        Command::Validate {
            spec,
            format,
            strict,
        } => validate(&spec, format, strict, o),
        Command::Build {
            spec,
            out,
            roles,
            format,
            strict,
            check: false,
            require_secrets,
            secrets_env,
        } => build(
            &spec,
            &out,
            roles.as_deref(),
            format,
            (strict, require_secrets || strict),
            secrets_env.as_deref(),
            o,
        ),
        Command::Build {
            spec,
            out,
            roles,
            format,
            strict,
            check: true,
            ..
        } => crate::review::build_check(&spec, &out, roles.as_deref(), format, strict, o),
        Command::Secrets { action } => secrets_command(action, o),
        Command::Diff(args) => crate::review::diff(&args, o),
        Command::Verify(args) => crate::review::verify(&args, o),
        Command::Lab { action } => lab_command(action, o),
        Command::Schema => {
            o.out.write_all(schema::generate_text().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { code } => explain(code.as_deref(), o),
    }
}

fn validate(spec: &Path, format: Format, strict: bool, o: &mut Output) -> io::Result<ExitCode> {
    match ops::validate_file(spec, strict) {
        Ok((v, source)) => {
            print_diags(&v.warnings, Some(&source), format, o)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => failure(f, format, o),
    }
}

fn build(
    spec: &Path,
    out: &Path,
    roles: Option<&Path>,
    format: Format,
    (strict, require_secrets): (bool, bool),
    secrets_env: Option<&Path>,
    o: &mut Output,
) -> io::Result<ExitCode> {
    let (validated, source) = match ops::validate_file(spec, strict) {
        Ok(v) => v,
        Err(f) => return failure(f, format, o),
    };
    let inputs = match ops::real_inputs(&validated, spec, roles, secrets_env, require_secrets) {
        Ok(i) => i,
        Err(f) => return failure(f, format, o),
    };
    print_diags(&validated.warnings, Some(&source), format, o)?;
    let report = match ops::build_to_dir(&validated, &inputs, out) {
        Ok(r) => r,
        Err(e) => return error(&e, o),
    };
    let fleet = &validated.fleet;
    let what = if !report.changed {
        "up to date:"
    } else if report.kept > 0 {
        "rebuilt"
    } else {
        "built"
    };
    writeln!(
        o.out,
        "{what} {} cluster{}, {} host{} ({} rendered, {} unchanged), {} artifacts in {}",
        fleet.clusters.len(),
        plural(fleet.clusters.len()),
        report.closures.len(),
        plural(report.closures.len()),
        report.rendered,
        report.kept,
        report.artifacts,
        out.display()
    )?;
    for (host, closure) in &report.closures {
        writeln!(o.out, "  {host:<24} {closure}")?;
    }
    for note in &report.notes {
        writeln!(o.err, "note: {note}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn secrets_command(action: SecretsAction, o: &mut Output) -> io::Result<ExitCode> {
    let (SecretsAction::Init(a) | SecretsAction::Check(a)) = &action;
    let (validated, source) = match ops::validate_file(&a.spec, false) {
        Ok(v) => v,
        Err(f) => return failure(f, a.format, o),
    };
    match &action {
        SecretsAction::Init(a) => {
            let env_file = a
                .secrets_env
                .clone()
                .unwrap_or_else(|| crate::secret_ops::default_env_file(&a.spec));
            match crate::secret_ops::init(&validated, &a.spec, &env_file) {
                Ok((text, complete)) => {
                    o.out.write_all(text.as_bytes())?;
                    Ok(if complete {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => error(&e, o),
            }
        }
        SecretsAction::Check(a) => {
            match crate::secret_ops::check(&validated, &a.spec, a.secrets_env.as_deref()) {
                Ok((text, diags)) => {
                    if a.format == Format::Human {
                        o.out.write_all(text.as_bytes())?;
                    }
                    print_diags(&diags, Some(&source), a.format, o)?;
                    Ok(if diags.iter().any(Diagnostic::is_error) {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    })
                }
                Err(e) => error(&e, o),
            }
        }
    }
}

fn lab_command(action: LabAction, o: &mut Output) -> io::Result<ExitCode> {
    let (LabAction::Up(a) | LabAction::Status(a) | LabAction::Down(a)) = &action;
    let opts = lab::Options {
        spec: a.spec.clone(),
        cluster: a.cluster.clone(),
        root: a.root.clone(),
        net: a.net,
        roles: a.roles.clone(),
    };
    let result = match action {
        LabAction::Up(_) => lab::up(&opts).map(|l| l.status_text()),
        LabAction::Status(_) => lab::root_of(&opts)
            .and_then(|r| lab::Lab::open(&r))
            .map(|l| l.status_text()),
        LabAction::Down(_) => lab::root_of(&opts)
            .and_then(|r| lab::Lab::open(&r))
            .and_then(|l| l.down())
            .map(|()| String::new()),
    };
    match result {
        Ok(text) => {
            o.out.write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => error(&e, o),
    }
}

fn explain(code: Option<&str>, o: &mut Output) -> io::Result<ExitCode> {
    match code {
        None => o.out.write_all(diag::code_table().as_bytes())?,
        Some(c) => match diag::Code::parse(&c.to_ascii_uppercase()) {
            Some(code) => match crate::explain::text(code) {
                Some(text) => o.out.write_all(text.as_bytes())?,
                None => writeln!(o.out, "{}: {}", code.as_str(), code.doc())?,
            },
            None => {
                writeln!(
                    o.err,
                    "error: unknown code `{c}`; `pgimg explain` lists them"
                )?;
                return Ok(ExitCode::from(2));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn failure(f: Failure, format: Format, o: &mut Output) -> io::Result<ExitCode> {
    match f {
        Failure::Invalid(source, d) => {
            print_diags(&d, Some(&source), format, o)?;
            Ok(ExitCode::from(1))
        }
        Failure::Error(e) => error(&e, o),
    }
}

fn error(e: &Error, o: &mut Output) -> io::Result<ExitCode> {
    writeln!(o.err, "error: {e}")?;
    Ok(ExitCode::from(2))
}

fn print_diags(
    diags: &[Diagnostic],
    source: Option<&SourceFile>,
    format: Format,
    o: &mut Output,
) -> io::Result<()> {
    for d in diags {
        match format {
            Format::Human => write!(o.err, "{}", diag::render_human(d, source))?,
            Format::Json => writeln!(o.out, "{}", diag::render_json(d))?,
        }
    }
    if format == Format::Human && !diags.is_empty() {
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let warnings = diags.len() - errors;
        writeln!(
            o.err,
            "{errors} error{}, {warnings} warning{}",
            plural(errors),
            plural(warnings)
        )?;
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
