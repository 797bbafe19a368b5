//! Entry point: parse the command line, run, print, exit with 0 (done), 1 (spec invalid) or 2 (usage or I/O).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use pgimg::cli::{Cli, Command, Format};
use pgimg::diag::{self, Diagnostic};
use pgimg::source::SourceFile;

fn print_diags(diags: &[Diagnostic], source: Option<&SourceFile>, format: Format) {
    let mut err = std::io::stderr().lock();
    let mut out = std::io::stdout().lock();
    for d in diags {
        let _ = match format {
            Format::Human => write!(err, "{}", diag::render_human(d, source)),
            Format::Json => writeln!(out, "{}", diag::render_json(d)),
        };
    }
    if format == Format::Human {
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let warnings = diags.len() - errors;
        if diags.len() > 0 {
            let _ = writeln!(
                err,
                "{errors} error{}, {warnings} warning{}",
                plural(errors),
                plural(warnings)
            );
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate {
            spec,
            format,
            strict,
        } => {
            let source = match pgimg::load::spec(&spec) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            match pgimg::validate(source.clone(), strict) {
                Ok(v) => {
                    print_diags(&v.warnings, Some(&source), format);
                    ExitCode::SUCCESS
                }
                Err(d) => {
                    print_diags(&d, Some(&source), format);
                    ExitCode::from(1)
                }
            }
        }
        Command::Build { .. } => {
            eprintln!("error: build is not available yet");
            ExitCode::from(2)
        }
        Command::Schema => {
            print!("{}", pgimg::schema::generate_text());
            ExitCode::SUCCESS
        }
        Command::Explain { code } => match code {
            None => {
                print!("{}", diag::code_table());
                ExitCode::SUCCESS
            }
            Some(c) => match diag::Code::parse(&c.to_ascii_uppercase()) {
                Some(code) => {
                    println!("{}: {}", code.as_str(), code.doc());
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("error: unknown code `{c}`; `pgimg explain` lists them");
                    ExitCode::from(2)
                }
            },
        },
    }
}

fn fail(e: pgimg::Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
