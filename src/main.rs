//! Entry point: parse the command line, run, print, exit with 0 (done), 1 (spec invalid) or 2 (usage or I/O).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use pgimg::cli::{Cli, Command};
use pgimg::cmd::{self, term::Term};
use pgimg::diag;

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
    let matches = Cli::command()
        // Computed once per run; clap keeps a `&'static str` without its `string` feature.
        .long_version(&*Box::leak(cmd::version::long().into_boxed_str()))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
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
        ),
        Command::Validate {
            spec,
            format,
            strict,
        } => cmd::validate(&spec, format, strict, term),
        Command::Build {
            spec,
            out,
            roles,
            format,
            strict,
        } => cmd::build::run(
            &cmd::build::Args {
                spec: &spec,
                out: &out,
                roles: roles.as_deref(),
                format,
                strict,
            },
            term,
        ),
        Command::Show { spec } => cmd::show(&spec, term),
        Command::Resolve { spec, host } => cmd::resolve(&spec, &host, term),
        Command::Graph { spec, format } => cmd::graph(&spec, format, term),
        Command::Manual { format } => cmd::manual(format),
        Command::Lab { action } => lab(action, term),
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

fn lab(action: pgimg::cli::LabAction, term: &Term) -> ExitCode {
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
        Err(e) => cmd::fail(e, term),
    }
}

// Hosts render on every core at once, and glibc's allocator serializes those
// threads on its arenas; mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
