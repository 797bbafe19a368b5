//! Entry point: parse the command line, run the command, exit with its code.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use pgimg::cli::Cli;
use pgimg::commands::{self, Output};

fn main() -> ExitCode {
    let matches = Cli::command()
        // Computed once per run; clap keeps a `&'static str` without its `string` feature.
        .long_version(&*Box::leak(pgimg::cmd::version::long().into_boxed_str()))
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Not locked for the whole run: the progress bar draws on stderr from the
    // rendering threads, which would wait forever on a lock this thread holds.
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = match commands::run(
        cli,
        &mut Output {
            out: &mut out,
            err: &mut err,
        },
    ) {
        Ok(code) => code,
        // The reader went away (`pgimg build … | head`): nothing left to say to it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing output: {e}");
            ExitCode::from(2)
        }
    };
    // Undocumented, for the benchmark: the peak resident set as the kernel counted it.
    if std::env::var_os("PGIMG_REPORT_PEAK_RSS").is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!("{line}");
        }
    }
    code
}

// Hosts render on every core at once, and glibc's allocator serializes those
// threads on its arenas; mimalloc's per-thread heaps do not. Without
// transparent huge pages (`no_thp`): each of its segments would otherwise
// be faulted in and zeroed 2 MiB at a time, which cost a 1,000-host build
// 10 MiB of its peak and a tenth of a rebuild's CPU in page clearing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
