//! Diagnostics: what is wrong with a spec, where, and what was expected.
//!
//! Every diagnostic has a stable code from [`Code`]; codes are never reused.
//! Two renderers: rustc-style text for people, JSON lines for CI annotations.

use std::fmt::Write as _;

use serde::Serialize;

use crate::source::{SourceFile, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $doc:literal;)*) => {
        /// Every diagnostic pgimg can report.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable code, such as `PG0101`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The severity the code has unless `--strict` raises it.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }

            /// One line of documentation.
            pub fn doc(self) -> &'static str {
                match self { $(Code::$variant => $doc,)* }
            }
        }
    };
}

codes! {
    YamlSyntax = "PG0001", Error, "the file is not valid YAML";
    DuplicateKey = "PG0002", Error, "a mapping has the same key twice";
    YamlUnsupported = "PG0003", Error, "a YAML feature pgimg does not accept (several documents, tags, complex keys)";
    TooManyProblems = "PG0004", Error, "more problems than pgimg reports at once; the first ones are shown";
    UnknownKey = "PG0010", Error, "a key the spec language does not have";
    MissingKey = "PG0011", Error, "a required key is missing";
    WrongType = "PG0012", Error, "a value has the wrong type";
    BadString = "PG0013", Error, "a string does not match its allowed pattern or length";
    OutOfRange = "PG0014", Error, "a number is outside its allowed range";
    NotAllowed = "PG0015", Error, "a value is not one of the allowed choices";
    SchemaOther = "PG0016", Error, "another JSON-schema violation";
    UnsupportedVersion = "PG0020", Error, "the spec's `version` is not one this pgimg reads";
    Yaml11Boolean = "PG0030", Warning, "a plain `yes`/`no`/`on`/`off` that YAML 1.1 readers take as a boolean; quote it";
    DuplicateHostName = "PG0101", Error, "two hosts of the fleet have the same name";
    DuplicateAddress = "PG0102", Error, "two hosts of the fleet share an address";
    InvalidAddress = "PG0103", Error, "an address is not a valid IPv4 or IPv6 address";
    InvalidHostName = "PG0104", Error, "a host name breaks RFC 1123";
    PrefixFamily = "PG0108", Error, "a network prefix length does not fit the host's address family";
    NoEtcd = "PG0110", Error, "a site with `pg` hosts has no `etcd` member";
    EvenEtcd = "PG0111", Error, "a site's etcd cluster has an even number of members";
    SingleEtcd = "PG0112", Warning, "a site's etcd cluster has a single member: no fault tolerance";
    EtcdElection = "PG0113", Error, "etcd's `election_timeout_ms` is below 5 × `heartbeat_interval_ms`";
    EtcdMajorityWithPatroni = "PG0114", Warning, "a bare majority of a site's etcd members share hosts with Patroni while another Patroni host has none: losing them loses quorum";
    PatroniTiming = "PG0120", Error, "Patroni needs `loop_wait + 2 * retry_timeout <= ttl`";
    PatroniMinimum = "PG0121", Error, "a Patroni timing is below its minimum (ttl 20, loop_wait 1, retry_timeout 3)";
    PortCollision = "PG0130", Error, "two services of one host use the same port";
    ClosedClientPort = "PG0131", Warning, "the firewall opens a port meant for clients to no source at all: set `network.client_networks`";
    UnknownSource = "PG0140", Error, "a DR site's `standby_of` names no site of its cluster";
    StandbyCycle = "PG0141", Error, "DR sites follow each other in a cycle";
    SameScope = "PG0142", Error, "a DR site has the same Patroni scope as its source";
    PrimarySiteCount = "PG0143", Error, "a cluster needs exactly one site without `standby_of`";
    SourceWithoutPg = "PG0144", Error, "a DR site, or the site it follows, has no `pg` host";
    DrNoFailover = "PG0145", Error, "every member of a DR site has `nofailover`: no standby leader can be elected";
    DuplicateSlot = "PG0146", Error, "two DR sites of one source hold the same replication slot";
    DuplicateMember = "PG0150", Error, "two Patroni members of a cluster and its DR sites have the same name";
    DuplicateSite = "PG0151", Error, "two sites of a cluster, or two clusters, have the same name";
    DuplicateScope = "PG0152", Error, "two sites of the fleet use the same Patroni scope";
    InvalidIdentifier = "PG0160", Error, "a slot, role or stanza name is not a valid PostgreSQL identifier";
    UnsupportedMajor = "PG0170", Error, "PostgreSQL major versions 14 to 18 are supported";
    SyncCount = "PG0180", Error, "`synchronous_node_count` is above the number of replicas";
    StrictSyncSingle = "PG0181", Warning, "`synchronous_mode_strict` with a single replica stops writes whenever it is down";
    RemoteTrust = "PG0190", Error, "pg_hba `trust` on a non-local address";
    HbaAddress = "PG0191", Error, "a pg_hba row's address does not fit its type";
    HaproxyWithoutPg = "PG0200", Error, "an `haproxy` host in a site without `pg` hosts";
    ServerMaxconn = "PG0201", Error, "HAProxy's `server_maxconn`, over all of a site's HAProxies, reaches PostgreSQL's `max_connections - superuser_reserved_connections`";
    VirtualAddressSingle = "PG0202", Warning, "`haproxy.virtual_address` in a site with fewer than two HAProxies: nothing to fail over to";
    S3Incomplete = "PG0210", Error, "an S3 repository with `key_type: shared` lacks its key references";
    NoRepository = "PG0211", Error, "pgBackRest has no repository";
    S3WithoutCipher = "PG0212", Warning, "an S3 repository of a cluster without `backup_cipher_pass`: backups are not encrypted by pgBackRest";
    CronRange = "PG0219", Error, "a backup schedule has a cron field out of its range; cron would drop the line";
    GatewayFamily = "PG0220", Error, "gateway or DNS address family differs from the host's";
    PxeWithoutArtifacts = "PG0230", Error, "a host with `boot.mac` gets PXE entries, which need `repos.artifacts`: the URL its installer fetches the kickstart from";
    BackupSchedule = "PG0240", Error, "a backup schedule is not a cron schedule a systemd timer can run";
    S3AutoOnBareMetal = "PG0300", Error, "S3 `key_type: auto` (EC2 instance role) on a site with bare-metal hosts";
    UnsharedPosixRepository = "PG0301", Error, "a posix pgBackRest repository of a site with several members is not a shared mount";
    InstallWithoutDisk = "PG0302", Error, "a host installs by default (`boot.install`) but names no disk to install on";
    UnknownPackageVersion = "PG0303", Warning, "a pinned package version is not in pgimg's package catalog";
    AddressOutsideSubnet = "PG0304", Error, "a host's address is outside its site's subnet";
    GatewayOutsideSubnet = "PG0305", Error, "a gateway is outside its host's subnet";
    UnknownTimeZone = "PG0306", Error, "a time zone is not in the tz database";
    NoDnsForRepositories = "PG0307", Error, "a host with a static network has no DNS server but its repositories are host names";
    MixedMajors = "PG0308", Error, "members of one Patroni cluster run different PostgreSQL majors";
    HostLevelClusterSetting = "PG0309", Error, "a cluster-wide Patroni setting is set for a single host";
    SecretMissing = "PG0400", Error, "a secret the spec references is not there: an unset variable or a missing file (`--require-secrets`, `--strict`)";
    SecretEmpty = "PG0401", Error, "a secret the spec references is empty (`--require-secrets`, `--strict`)";
    SecretUnreadable = "PG0402", Error, "a secret file the spec references cannot be read: permissions, a directory, not a regular file (`--require-secrets`, `--strict`)";
    SecretValue = "PG0403", Error, "a secret value has a character an environment file or `.pgpass` cannot carry safely, is not UTF-8 or is over 4096 bytes";
    SecretUnreferenced = "PG0404", Error, "a cluster has no reference for a secret every cluster needs (`--require-secrets`, `--strict`)";
    RestApiOpen = "PG0410", Warning, "a cluster without `restapi_password`: Patroni's unsafe REST endpoints answer anyone who reaches the port";
    TlsOff = "PG0411", Warning, "a cluster with `secrets.tls.enabled: false`: etcd, PostgreSQL and the Patroni REST API speak plain text";
    ControlPlaneOpen = "PG0412", Warning, "a cluster with TLS but without `etcd_root_password`, `etcd_password` or `haproxy_stats_password`: etcd or the HAProxy stats page without authentication";
    PatroniEtcdAuth = "PG0413", Error, "etcd authentication with a Patroni before 4.1.1, which cannot keep its lease on etcd 3.6.9, 3.5.28, 3.4.42 or later";
}

impl Code {
    /// Looks a code up by its stable string.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

/// One problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    /// JSON pointer of the offending node (`/clusters/0/sites/1/hosts/2/address`).
    pub pointer: String,
    pub file: Option<String>,
    pub span: Option<Span>,
    /// What was found.
    pub message: String,
    /// What was expected, shown under the caret.
    pub expected: Option<String>,
    pub help: Option<String>,
    /// The hosts a setting found wrong applies to, when it is a host's setting.
    pub hosts: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: Code, pointer: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: code.severity(),
            code,
            pointer: pointer.to_string(),
            file: None,
            span: None,
            message: message.into(),
            expected: None,
            help: None,
            hosts: Vec::new(),
        }
    }

    /// Names the host whose effective setting is wrong.
    pub fn for_host(mut self, host: &str) -> Self {
        self.hosts = vec![host.to_string()];
        self
    }

    pub fn with_span(mut self, file: String, span: Span) -> Self {
        self.file = Some(file);
        self.span = Some(span);
        self
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Sort key: position first, so the report reads top to bottom.
    fn sort_key(&self) -> (Option<&str>, Option<Span>, Code, &str, &str) {
        (
            self.file.as_deref(),
            self.span,
            self.code,
            &self.pointer,
            &self.message,
        )
    }
}

/// Sorts by file, line, column and code, and drops exact repeats. A number
/// out of its schema range (PG0014) yields to a semantic diagnostic about
/// the same node, which says more (`ttl` 0: Patroni's minimum is 20).
pub fn sort(diags: &mut Vec<Diagnostic>) {
    diags.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diags.dedup();
    let semantic: Vec<String> = diags
        .iter()
        .filter(|d| d.code.as_str() >= "PG0100")
        .map(|d| d.pointer.clone())
        .collect();
    diags.retain(|d| d.code != Code::OutOfRange || !semantic.contains(&d.pointer));
}

/// True for the pointer of a slot that holds a secret reference (`secrets.*`,
/// a repository's `key` and `key_secret`): a plain value found there may be
/// the secret itself, so diagnostics never show it.
pub fn is_secret_pointer(pointer: &str) -> bool {
    let tokens: Vec<&str> = pointer.split('/').collect();
    match tokens.as_slice() {
        [.., "secrets", _] => true,
        [.., "repos", i, "key" | "key_secret"] => i.parse::<usize>().is_ok(),
        _ => false,
    }
}

/// Text from the spec made safe for a terminal: control characters (C0, DEL,
/// C1 — an ESC would drive the terminal, a newline would forge a line), line
/// and paragraph separators and bidirectional overrides are shown as `\u{..}`.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\t')
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| {
                if unsafe_char(c) {
                    format!("\\u{{{:x}}}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Renders one diagnostic the way rustc does: header, location, the line, a caret.
pub fn render_human(d: &Diagnostic, source: Option<&SourceFile>) -> String {
    let d = &Diagnostic {
        pointer: printable(&d.pointer).into_owned(),
        file: d.file.as_deref().map(|f| printable(f).into_owned()),
        message: printable(&d.message).into_owned(),
        expected: d.expected.as_deref().map(|e| printable(e).into_owned()),
        help: d.help.as_deref().map(|h| printable(h).into_owned()),
        ..d.clone()
    };
    let mut out = String::new();
    let sev = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let pointer = if d.pointer.is_empty() {
        "/"
    } else {
        &d.pointer
    };
    let _ = writeln!(out, "{sev}[{}]: {pointer}: {}", d.code.as_str(), d.message);
    if let (Some(file), Some(span)) = (&d.file, d.span) {
        let gutter = span.line.to_string().len();
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad}--> {file}:{}:{}", span.line, span.col);
        if let Some(line) = source.and_then(|s| s.line(span.line)) {
            let _ = writeln!(out, "{pad} |");
            let mut shown: String = line.replace('\t', " ");
            if is_secret_pointer(&d.pointer) {
                // A value where a secret reference belongs may be the secret itself.
                shown = shown
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        let hidden = i + 1 >= span.col && i + 1 < span.col + span.len.max(1);
                        if hidden { '*' } else { c }
                    })
                    .collect();
            }
            let _ = writeln!(out, "{} | {}", span.line, printable(&shown));
            let caret = format!(
                "{}{}",
                " ".repeat(span.col.saturating_sub(1)),
                "^".repeat(span.len.max(1))
            );
            match &d.expected {
                Some(e) => {
                    let _ = writeln!(out, "{pad} | {caret} expected {e}");
                }
                None => {
                    let _ = writeln!(out, "{pad} | {caret}");
                }
            }
            let _ = writeln!(out, "{pad} |");
        } else if let Some(e) = &d.expected {
            let _ = writeln!(out, "{pad} = expected {e}");
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "{pad} = help: {h}");
        }
    } else {
        if let Some(e) = &d.expected {
            let _ = writeln!(out, "  = expected {e}");
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "  = help: {h}");
        }
    }
    out
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    code: &'a str,
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    end_column: Option<usize>,
    pointer: &'a str,
    message: &'a str,
    expected: Option<&'a str>,
    help: Option<&'a str>,
    /// The hosts a setting found wrong applies to; left out when none is named.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    hosts: &'a [String],
}

/// Renders one diagnostic as a single JSON line.
pub fn render_json(d: &Diagnostic) -> String {
    let j = JsonDiagnostic {
        severity: d.severity,
        code: d.code.as_str(),
        file: d.file.as_deref(),
        line: d.span.map(|s| s.line),
        column: d.span.map(|s| s.col),
        end_column: d.span.map(|s| s.col + s.len),
        pointer: &d.pointer,
        message: &d.message,
        expected: d.expected.as_deref(),
        help: d.help.as_deref(),
        hosts: &d.hosts,
    };
    serde_json::to_string(&j).unwrap_or_default()
}

/// Reads back one line of [`render_json`]: a build's warnings are kept as
/// these lines beside its output, so that a rebuild of the same inputs can
/// show them without validating again.
pub fn parse_json(line: &str) -> Option<Diagnostic> {
    #[derive(serde::Deserialize)]
    struct Owned {
        severity: String,
        code: String,
        file: Option<String>,
        line: Option<usize>,
        column: Option<usize>,
        end_column: Option<usize>,
        pointer: String,
        message: String,
        expected: Option<String>,
        help: Option<String>,
        #[serde(default)]
        hosts: Vec<String>,
    }
    let j: Owned = serde_json::from_str(line).ok()?;
    let severity = match j.severity.as_str() {
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        _ => return None,
    };
    let span = match (j.line, j.column, j.end_column) {
        (Some(line), Some(col), Some(end)) => Some(Span {
            line,
            col,
            len: end.checked_sub(col)?,
        }),
        (None, None, None) => None,
        _ => return None,
    };
    Some(Diagnostic {
        severity,
        code: Code::parse(&j.code)?,
        pointer: j.pointer,
        file: j.file,
        span,
        message: j.message,
        expected: j.expected,
        help: j.help,
        hosts: j.hosts,
    })
}

/// The table of codes, as printed by `pgimg explain` and kept in the docs.
pub fn code_table() -> String {
    let mut out = String::from("| code | severity | meaning |\n|---|---|---|\n");
    for c in Code::ALL {
        let sev = match c.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "| {} | {sev} | {} |", c.as_str(), c.doc());
    }
    out
}

/// Raises warnings to errors, for `--strict`.
pub fn make_strict(diags: &mut [Diagnostic]) {
    for d in diags {
        d.severity = Severity::Error;
    }
}

/// The closest known word, if it is close enough to be a typo.
pub fn did_you_mean(word: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(word, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}
