//! Entry point: parse the command line, run the command, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use pgimg::cli::Cli;
use pgimg::commands::{self, Output};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
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
// threads on its arenas; mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
