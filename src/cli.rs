//! The command line: clap definitions only, no logic.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "pgimg",
    version,
    about = "Build reproducible boot artifacts for Patroni PostgreSQL HA clusters from one spec"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// rustc-style text on stderr.
    Human,
    /// One JSON object per diagnostic, one per line, on stdout.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a spec against the schema and the semantic rules.
    Validate {
        /// The spec file.
        spec: PathBuf,
        /// How diagnostics are printed.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Render every artifact of a spec into an output directory.
    Build {
        /// The spec file.
        spec: PathBuf,
        /// Output directory (replaced as a whole when the build succeeds).
        #[arg(short = 'o', long = "out", default_value = "out")]
        out: PathBuf,
        /// Use the role templates in this directory instead of the built-in ones.
        #[arg(long)]
        roles: Option<PathBuf>,
        /// How diagnostics are printed.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Print the JSON schema of the spec language.
    Schema,
    /// Explain a diagnostic code, or list them all.
    Explain {
        /// A code such as PG0120.
        code: Option<String>,
    },
}
