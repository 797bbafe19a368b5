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
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Print only diagnostics and errors: no summary, no per-host lines, no progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: `build` lists every artifact of each host.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to colour the output: on a terminal unless NO_COLOR is set (auto), always, never.
    #[arg(long, value_enum, global = true, default_value = "auto")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// A picture, laid out by pgimg itself.
    Svg,
    /// A Mermaid flowchart (renders on GitHub and GitLab).
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManualFormat {
    /// Bash completions.
    Bash,
    /// Zsh completions.
    Zsh,
    /// Fish completions.
    Fish,
    /// The manual page (roff).
    Man,
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
    /// Write a commented starter spec that validates and builds as it is.
    Init {
        /// Where to write it (`-` prints it); an existing file is never overwritten.
        #[arg(default_value = "pgimg.yml")]
        path: PathBuf,
        /// Add a DR site: a standby cluster following the primary site.
        #[arg(long)]
        dr: bool,
        /// PostgreSQL hosts per site (each also an etcd member while their count is odd).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
        hosts: u8,
        /// Hosts start on a cloud (EC2) from their cloud-init user-data (the default).
        #[arg(long, conflicts_with = "bare_metal")]
        cloud: bool,
        /// Hosts install over PXE from a kickstart: each gets a MAC and disks.
        #[arg(long)]
        bare_metal: bool,
    },
    /// Check a spec against the schema and the semantic rules.
    Validate {
        /// The spec file (`-` reads standard input).
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
        /// The spec file (`-` reads standard input; `file:` secrets are then relative to the working directory).
        spec: PathBuf,
        /// Output directory (replaced as a whole when the build succeeds).
        #[arg(short = 'o', long = "out", default_value = "out")]
        out: PathBuf,
        /// Use the role templates in this directory instead of the built-in ones.
        #[arg(long)]
        roles: Option<PathBuf>,
        /// `human`: diagnostics on stderr, a summary on stdout; `json`: one JSON document on stdout and nothing else.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Treat warnings as errors; implies `--require-secrets`.
        #[arg(long)]
        strict: bool,
        /// Fail (exit 1) when a secret the spec references is missing, empty or unreadable.
        #[arg(long)]
        require_secrets: bool,
        /// Read `env:` secrets that are not in the environment from this `NAME=value` file.
        #[arg(long, value_name = "FILE")]
        secrets_env: Option<PathBuf>,
        /// Build in memory and compare with the existing output instead of writing: exit 1 with the summary when they differ.
        #[arg(long)]
        check: bool,
        /// Also write each host's kickstart or user-data with its secrets embedded, under secrets/<host>/ only (mode 0600), for each host whose every secret is supplied.
        #[arg(long, conflicts_with = "check")]
        embed_secrets: bool,
    },
    /// Create or check the secrets a spec references.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// Compare two builds and say what each change means for a running cluster.
    Diff(DiffArgs),
    /// Re-hash every artifact of an output (or of its HTTP copy) against its manifest.json.
    Verify(VerifyArgs),
    /// Print the fleet as a table: cluster, site, host, address, roles, ports, boot.
    Show {
        /// The spec file (`-` reads standard input).
        spec: PathBuf,
    },
    /// Print one host's effective settings, each with the layer and line that set it.
    Resolve {
        /// The spec file (`-` reads standard input).
        spec: PathBuf,
        /// The host's name.
        host: String,
    },
    /// Draw the fleet: sites, hosts, roles, HAProxy routes and DR replication.
    Graph {
        /// The spec file (`-` reads standard input).
        spec: PathBuf,
        #[arg(long, value_enum, default_value = "svg")]
        format: GraphFormat,
    },
    /// Print shell completions or the manual page, generated from this command line.
    Manual {
        #[arg(value_enum)]
        format: ManualFormat,
    },
    /// Start a spec's cluster on this machine from its rendered artifacts, on loopback addresses.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Print the JSON schema of the spec language.
    Schema,
    /// Explain a diagnostic code, or list them all.
    Explain {
        /// A code such as PG0120.
        code: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Write strong random values for every referenced secret that is missing
    /// (`file:` references as files of mode 0600, `env:` ones into an environment
    /// file); never overwrites.
    Init(SecretsArgs),
    /// List every referenced secret and whether it is there; exit 1 when one is missing or unusable.
    Check(SecretsArgs),
}

#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    /// The spec file.
    pub spec: PathBuf,
    /// The `NAME=value` file for `env:` references (default: `secrets.env` next to the spec for `init`; none for `check`).
    #[arg(long, value_name = "FILE")]
    pub secrets_env: Option<PathBuf>,
    /// How diagnostics are printed.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum LabAction {
    /// Render with the lab mapping, start every etcd, Patroni and HAProxy, wait until healthy.
    Up(LabArgs),
    /// Show the members of every site, like `patronictl list`.
    Status(LabArgs),
    /// Stop exactly the processes `up` started, then remove the lab root.
    Down(LabArgs),
}

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// The spec file.
    pub spec: PathBuf,
    /// The cluster to start (needed when the spec has several).
    pub cluster: Option<String>,
    /// Lab root: every host's files go under `<root>/<host>` (default `/tmp/pgimg-lab/<cluster>`).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Second octet of the lab's loopback addresses, `127.<net>.<site>.<host>`.
    #[arg(long, default_value_t = 0)]
    pub net: u8,
    /// Use the role templates in this directory instead of the built-in ones.
    #[arg(long)]
    pub roles: Option<PathBuf>,
    /// Boot mode: every host a systemd-nspawn container with systemd as PID 1,
    /// installed by its own kickstart or user-data, on 198.18.0.0/15 (as root).
    #[arg(long)]
    pub boot: bool,
}

/// How `pgimg diff` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Text for a terminal.
    Text,
    /// A pull-request comment: summary table, actions, collapsible per-host diffs.
    Markdown,
    /// One JSON document, for tools.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// `OLD NEW`, or `NEW` alone (then OLD is NEW at `--base`). Each a spec file, an
    /// output directory, or `REV:PATH` (a spec at a git revision).
    #[arg(num_args = 1..=2, required = true, value_name = "SIDE")]
    pub sides: Vec<String>,
    /// The git revision of OLD when only NEW is given (default: the merge base of HEAD and the main branch).
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiffFormat,
    /// Use the role templates in this directory for both sides instead of the built-in ones.
    #[arg(long)]
    pub roles: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The output directory (default `out`); with `--url`, the local copy the served one must match.
    pub out: Option<PathBuf>,
    /// Check the artifacts as served under this plain http:// base URL (such as `repos.artifacts`).
    #[arg(long, value_name = "BASE")]
    pub url: Option<String>,
}
