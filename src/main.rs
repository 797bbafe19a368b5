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
        if !diags.is_empty() {
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
    let code = run();
    // Undocumented, for the benchmark: the peak resident set as the kernel counted it.
    if std::env::var_os("PGIMG_REPORT_PEAK_RSS").is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!("{line}");
        }
    }
    code
}

fn run() -> ExitCode {
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
        Command::Build {
            spec,
            out,
            roles,
            format,
            strict,
            require_secrets,
            secrets_env,
        } => build(
            &spec,
            &out,
            roles.as_deref(),
            format,
            strict,
            require_secrets || strict,
            secrets_env.as_deref(),
        ),
        Command::Secrets { action } => secrets(action),
        Command::Lab { action } => lab(action),
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

fn build(
    spec: &std::path::Path,
    out: &std::path::Path,
    roles: Option<&std::path::Path>,
    format: Format,
    strict: bool,
    require_secrets: bool,
    secrets_env: Option<&std::path::Path>,
) -> ExitCode {
    let source = match pgimg::load::spec(spec) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let validated = match pgimg::validate(source.clone(), strict) {
        Ok(v) => v,
        Err(d) => {
            print_diags(&d, Some(&source), format);
            return ExitCode::from(1);
        }
    };
    let reading = match pgimg::secrets::command::read_and_check(
        &validated,
        spec,
        secrets_env,
        require_secrets,
    ) {
        Ok((_, reading, diags)) if !diags.iter().any(Diagnostic::is_error) => reading,
        Ok((_, _, mut diags)) => {
            diags.extend(validated.warnings.iter().cloned());
            diag::sort(&mut diags);
            print_diags(&diags, Some(&source), format);
            return ExitCode::from(1);
        }
        Err(e) => return fail(e),
    };
    print_diags(&validated.warnings, Some(&source), format);
    let inputs = (|| {
        Ok::<_, pgimg::Error>(pgimg::BuildInputs {
            roles: match roles {
                Some(dir) => pgimg::load::roles(dir)?,
                None => pgimg::render::templates::RoleTree::embedded(),
            },
            secrets: reading.values,
            mapping: Default::default(),
        })
    })();
    let tree = match inputs.and_then(|i| pgimg::build(&validated, &i)) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if let Err(e) = pgimg::write::write(&tree, out) {
        return fail(e);
    }
    let fleet = &validated.fleet;
    let public = tree
        .files
        .keys()
        .filter(|p| pgimg::render::manifest::is_public(p))
        .count();
    println!(
        "built {} cluster{}, {} host{}, {public} artifacts into {}",
        fleet.clusters.len(),
        plural(fleet.clusters.len()),
        tree.closures.len(),
        plural(tree.closures.len()),
        out.display()
    );
    for (host, closure) in &tree.closures {
        println!("  {host:<24} {closure}");
    }
    for note in &tree.notes {
        eprintln!("note: {note}");
    }
    ExitCode::SUCCESS
}

fn secrets(action: pgimg::cli::SecretsAction) -> ExitCode {
    use pgimg::cli::SecretsAction;
    let (SecretsAction::Init(a) | SecretsAction::Check(a)) = &action;
    let source = match pgimg::load::spec(&a.spec) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let validated = match pgimg::validate(source.clone(), false) {
        Ok(v) => v,
        Err(d) => {
            print_diags(&d, Some(&source), a.format);
            return ExitCode::from(1);
        }
    };
    match &action {
        SecretsAction::Init(a) => {
            let env_file = a
                .secrets_env
                .clone()
                .unwrap_or_else(|| pgimg::secrets::command::default_env_file(&a.spec));
            match pgimg::secrets::command::init(&validated, &a.spec, &env_file) {
                Ok((text, complete)) => {
                    print!("{text}");
                    if complete {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => fail(e),
            }
        }
        SecretsAction::Check(a) => {
            match pgimg::secrets::command::check(&validated, &a.spec, a.secrets_env.as_deref()) {
                Ok((text, diags)) => {
                    print!("{text}");
                    print_diags(&diags, Some(&source), a.format);
                    if diags.iter().any(Diagnostic::is_error) {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => fail(e),
            }
        }
    }
}

fn lab(action: pgimg::cli::LabAction) -> ExitCode {
    use pgimg::cli::LabAction;
    let (LabAction::Up(a) | LabAction::Status(a) | LabAction::Down(a)) = &action;
    let opts = pgimg::lab::Options {
        spec: a.spec.clone(),
        cluster: a.cluster.clone(),
        root: a.root.clone(),
        net: a.net,
        roles: a.roles.clone(),
    };
    let result = match action {
        LabAction::Up(_) => pgimg::lab::up(&opts).map(|l| print!("{}", l.status_text())),
        LabAction::Status(_) => pgimg::lab::root_of(&opts)
            .and_then(|r| pgimg::lab::Lab::open(&r))
            .map(|l| print!("{}", l.status_text())),
        LabAction::Down(_) => pgimg::lab::root_of(&opts)
            .and_then(|r| pgimg::lab::Lab::open(&r))
            .and_then(|l| l.down()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: pgimg::Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

// Hosts render on every core at once, and glibc's allocator serializes those
// threads on its arenas; mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
