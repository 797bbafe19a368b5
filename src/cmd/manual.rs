//! Shell completions and the manual page, generated from the command-line
//! definition (`cli.rs`), so they cannot drift from it; the committed copies
//! under `docs/` are drift-tested.

use clap::CommandFactory;

use crate::cli::{Cli, ManualFormat};

/// Where each format is committed, relative to the repository root.
pub fn committed_path(format: ManualFormat) -> &'static str {
    match format {
        ManualFormat::Bash => "docs/completions/pgimg.bash",
        ManualFormat::Zsh => "docs/completions/_pgimg",
        ManualFormat::Fish => "docs/completions/pgimg.fish",
        ManualFormat::Man => "docs/man/pgimg.1",
    }
}

/// The completions or manual page, as bytes.
pub fn render(format: ManualFormat) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let shell = match format {
        ManualFormat::Bash => clap_complete::Shell::Bash,
        ManualFormat::Zsh => clap_complete::Shell::Zsh,
        ManualFormat::Fish => clap_complete::Shell::Fish,
        ManualFormat::Man => {
            // Writing into a Vec cannot fail.
            let _ = clap_mangen::Man::new(cmd).render(&mut out);
            return out;
        }
    };
    clap_complete::generate(shell, &mut cmd, "pgimg", &mut out);
    out
}
