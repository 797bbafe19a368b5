//! The commands behind `main`: each runs `ops`, prints, and returns the exit
//! code — 0 done, 1 the spec is invalid, 2 usage or operational error.
//!
//! Output goes through `Output`, whose writes fail with `BrokenPipe` when the
//! reader has gone (`pgimg build … | head`): `main` then ends quietly, as
//! ripgrep does, instead of panicking like `println!`.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use crate::cli::{Cli, Command, LabAction, SecretsAction};
use crate::cmd::{self, term::Term};
use crate::diag::{self, Diagnostic};
use crate::ops::{self, Failure};
use crate::{Error, lab, schema};

/// Where a command prints: stdout for results, stderr for diagnostics and notes.
pub struct Output<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// Runs the parsed command line.
pub fn run(cli: Cli, o: &mut Output) -> io::Result<ExitCode> {
    let no_color = std::env::var_os("NO_COLOR");
    let term = &Term::new(
        &cli.global,
        std::io::stderr().is_terminal(),
        no_color.as_deref(),
    );
    match cli.command {
        Command::Init {
            path,
            dr,
            hosts,
            cloud: _,
            bare_metal,
        } => cmd::init(
            &path,
            cmd::init::Starter {
                dr,
                hosts,
                bare_metal,
            },
            term,
            o,
        ),
        Command::Validate {
            spec,
            format,
            strict,
        } => cmd::validate(&spec, format, strict, term, o),
        Command::Build {
            spec,
            out,
            roles,
            format,
            strict,
            check: false,
            require_secrets,
            secrets_env,
            embed_secrets,
        } => cmd::build::run(
            &cmd::build::Args {
                spec: &spec,
                out: &out,
                roles: roles.as_deref(),
                format,
                strict,
                require_secrets,
                secrets_env: secrets_env.as_deref(),
                embed_secrets,
            },
            term,
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
        Command::Secrets { action } => secrets_command(action, term, o),
        Command::Diff(args) => crate::review::diff(&args, o),
        Command::Verify(args) => crate::review::verify(&args, o),
        Command::Show { spec } => cmd::print_view(&spec, cmd::show::show, term, o),
        Command::Resolve { spec, host } => {
            cmd::print_view(&spec, |v| cmd::show::resolve(v, &host), term, o)
        }
        Command::Graph { spec, format } => {
            cmd::print_view(&spec, |v| Ok(cmd::graph::render(&v.fleet, format)), term, o)
        }
        Command::Manual { format } => cmd::manual(format, o),
        Command::Lab { action } => lab_command(action, o),
        Command::Schema => {
            o.out.write_all(schema::generate_text().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { code } => explain(code.as_deref(), o),
    }
}

fn secrets_command(action: SecretsAction, term: &Term, o: &mut Output) -> io::Result<ExitCode> {
    let (SecretsAction::Init(a) | SecretsAction::Check(a)) = &action;
    let (validated, source) = match ops::validate_file(&a.spec, false) {
        Ok(v) => v,
        Err(Failure::Invalid(source, d)) => {
            cmd::print_diags(&d, Some(&source), a.format, term, o)?;
            return Ok(ExitCode::from(1));
        }
        Err(Failure::Error(e)) => return error(&e, o),
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
                    if a.format == crate::cli::Format::Human {
                        o.out.write_all(text.as_bytes())?;
                    }
                    cmd::print_diags(&diags, Some(&source), a.format, term, o)?;
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
    if a.boot {
        return match lab::boot::command(action) {
            Ok(text) => o.out.write_all(text.as_bytes()).map(|()| ExitCode::SUCCESS),
            Err(e) => error(&e, o),
        };
    }
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

fn error(e: &Error, o: &mut Output) -> io::Result<ExitCode> {
    writeln!(o.err, "error: {e}")?;
    Ok(ExitCode::from(2))
}
