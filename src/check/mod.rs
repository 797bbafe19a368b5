//! Stage "check": semantic rules over the resolved fleet.
//!
//! Each rule is a plain function listed in [`RULES`]; it returns every
//! problem it finds, with the JSON pointer of the node the user should edit.
//! The runner turns pointers into line:column. Rules may assume the spec
//! passed the schema, and nothing more.

pub(crate) mod daytwo;
mod firstboot;
mod network;
mod secure;
mod topology;
mod values;

use crate::diag::{self, Code, Diagnostic};
use crate::model::Fleet;
use crate::source::{SourceFile, SpanTable};

/// What every rule sees.
pub struct Ctx<'a> {
    pub fleet: &'a Fleet,
    pub spans: &'a SpanTable,
    pub source: &'a SourceFile,
    /// Host name → the ports its roles open, as planned from `role.yaml`.
    pub ports: &'a PlannedPorts,
}

/// A port a host's roles open, as the plan has it (`roles/*/role.yaml`
/// `ports:`): rules see ports only through these, never through a table of
/// their own. `ops::validate` plans the hosts to fill them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFact {
    /// `None` for a protocol without ports (VRRP).
    pub port: Option<u16>,
    pub proto: String,
    pub service: String,
    /// The setting that chooses the port (`postgresql/port`).
    pub setting: Option<String>,
    /// How many sources the firewall opens it to.
    pub sources: usize,
    /// Whether the client networks are among its sources.
    pub for_clients: bool,
}

/// Host name → its ports.
pub type PlannedPorts = std::collections::BTreeMap<String, Vec<PortFact>>;

/// Whether a finding with `code` comes from the planned ports
/// ([`PlannedPorts`]): a rebuild plans again the ports of the hosts that
/// had one, though their inputs did not change, so as to repeat it.
pub fn is_about_ports(code: crate::diag::Code) -> bool {
    matches!(
        code,
        crate::diag::Code::PortCollision | crate::diag::Code::ClosedClientPort
    )
}

impl Ctx<'_> {
    /// `file:line` of the node at `pointer`, for "first used at" notes.
    pub fn place(&self, pointer: &str) -> String {
        match self.spans.edit_span(pointer) {
            Some(s) => format!("{}:{}", self.source.name, s.line),
            None => format!("`{pointer}`"),
        }
    }
}

pub struct Rule {
    pub name: &'static str,
    /// The codes this rule can report.
    pub codes: &'static [Code],
    pub run: fn(&Ctx) -> Vec<Diagnostic>,
}

pub const RULES: &[Rule] = &[
    Rule {
        name: "etcd timing",
        codes: &[Code::EtcdElection],
        run: daytwo::etcd_timing,
    },
    Rule {
        name: "haproxy budget",
        codes: &[Code::ServerMaxconn, Code::VirtualAddressSingle],
        run: daytwo::haproxy_budget,
    },
    Rule {
        name: "backup schedules",
        codes: &[Code::BackupSchedule],
        run: daytwo::backup_schedules,
    },
    Rule {
        name: "host names",
        codes: &[Code::DuplicateHostName, Code::InvalidHostName],
        run: network::host_names,
    },
    Rule {
        name: "addresses",
        codes: &[
            Code::DuplicateAddress,
            Code::InvalidAddress,
            Code::GatewayFamily,
        ],
        run: network::addresses,
    },
    Rule {
        name: "ports",
        codes: &[Code::PortCollision, Code::ClosedClientPort],
        run: network::ports,
    },
    Rule {
        name: "client networks",
        codes: &[Code::InvalidAddress],
        run: network::client_networks,
    },
    Rule {
        name: "network boot",
        codes: &[Code::PxeWithoutArtifacts],
        run: network::network_boot,
    },
    Rule {
        name: "pg_hba",
        codes: &[Code::RemoteTrust, Code::HbaAddress],
        run: network::pg_hba,
    },
    Rule {
        name: "names",
        codes: &[
            Code::DuplicateSite,
            Code::DuplicateScope,
            Code::DuplicateMember,
        ],
        run: topology::names,
    },
    Rule {
        name: "etcd quorum",
        codes: &[Code::NoEtcd, Code::EvenEtcd, Code::SingleEtcd],
        run: topology::etcd_quorum,
    },
    Rule {
        name: "patroni timing",
        codes: &[Code::PatroniTiming, Code::PatroniMinimum],
        run: topology::patroni_timing,
    },
    Rule {
        name: "standby sites",
        codes: &[
            Code::UnknownSource,
            Code::StandbyCycle,
            Code::SameScope,
            Code::PrimarySiteCount,
            Code::SourceWithoutPg,
            Code::DrNoFailover,
            Code::DuplicateSlot,
        ],
        run: topology::standby_sites,
    },
    Rule {
        name: "identifiers",
        codes: &[Code::InvalidIdentifier],
        run: topology::identifiers,
    },
    Rule {
        name: "postgresql major",
        codes: &[Code::UnsupportedMajor],
        run: topology::major,
    },
    Rule {
        name: "synchronous replication",
        codes: &[Code::SyncCount, Code::StrictSyncSingle],
        run: topology::synchronous,
    },
    Rule {
        name: "haproxy placement",
        codes: &[Code::HaproxyWithoutPg],
        run: topology::haproxy_placement,
    },
    Rule {
        name: "backup repositories",
        codes: &[Code::S3Incomplete, Code::NoRepository],
        run: topology::backup_repos,
    },
    Rule {
        name: "network prefix",
        codes: &[Code::PrefixFamily],
        run: values::network_prefix,
    },
    Rule {
        name: "cron schedules",
        codes: &[Code::CronRange],
        run: values::cron_schedules,
    },
    Rule {
        name: "etcd placement",
        codes: &[Code::EtcdMajorityWithPatroni],
        run: secure::etcd_placement,
    },
    Rule {
        name: "repository cipher",
        codes: &[Code::S3WithoutCipher],
        run: secure::repository_cipher,
    },
    Rule {
        name: "REST API authentication",
        codes: &[Code::RestApiOpen],
        run: secure::restapi_authentication,
    },
    Rule {
        name: "TLS opt-out",
        codes: &[Code::TlsOff],
        run: secure::tls_off,
    },
    Rule {
        name: "control plane authentication",
        codes: &[Code::ControlPlaneOpen],
        run: secure::control_plane_authentication,
    },
    Rule {
        name: "Patroni with etcd authentication",
        codes: &[Code::PatroniEtcdAuth],
        run: secure::patroni_etcd_auth,
    },
    Rule {
        name: "S3 credentials on bare metal",
        codes: &[Code::S3AutoOnBareMetal],
        run: firstboot::s3_credentials,
    },
    Rule {
        name: "shared posix repositories",
        codes: &[Code::UnsharedPosixRepository],
        run: firstboot::shared_posix,
    },
    Rule {
        name: "install disks",
        codes: &[Code::InstallWithoutDisk],
        run: firstboot::install_disks,
    },
    Rule {
        name: "package pins",
        codes: &[Code::UnknownPackageVersion],
        run: firstboot::package_pins,
    },
    Rule {
        name: "subnets",
        codes: &[Code::AddressOutsideSubnet, Code::GatewayOutsideSubnet],
        run: firstboot::subnets,
    },
    Rule {
        name: "time zones",
        codes: &[Code::UnknownTimeZone],
        run: firstboot::time_zones,
    },
    Rule {
        name: "DNS for repositories",
        codes: &[Code::NoDnsForRepositories],
        run: firstboot::dns_for_repositories,
    },
    Rule {
        name: "one PostgreSQL major",
        codes: &[Code::MixedMajors],
        run: firstboot::one_major,
    },
    Rule {
        name: "cluster-wide settings",
        codes: &[Code::HostLevelClusterSetting],
        run: firstboot::cluster_wide_settings,
    },
];

/// Runs every rule; the result is sorted, deduplicated and positioned.
pub fn run(
    fleet: &Fleet,
    spans: &SpanTable,
    source: &SourceFile,
    ports: &PlannedPorts,
) -> Vec<Diagnostic> {
    let ctx = Ctx {
        fleet,
        spans,
        source,
        ports,
    };
    let found: Vec<Diagnostic> = RULES.iter().flat_map(|r| (r.run)(&ctx)).collect();
    let mut out: Vec<Diagnostic> = once_per_setting(found)
        .into_iter()
        .map(|d| match spans.edit_span(&d.pointer) {
            Some(s) => d.with_span(source.name.clone(), s),
            None => d,
        })
        .collect();
    diag::sort(&mut out);
    out
}

/// One mistake set at the fleet, cluster or site level is wrong for every
/// host below it: it is reported once, at the line to edit, naming the hosts.
/// In place and in one pass: a large fleet has tens of thousands of findings.
fn once_per_setting(mut found: Vec<Diagnostic>) -> Vec<Diagnostic> {
    use std::collections::hash_map::Entry;
    use std::collections::{HashMap, HashSet};
    // (code, pointer) → the first finding's index and the hosts it names.
    let mut first: HashMap<(Code, String), (usize, HashSet<String>)> = HashMap::new();
    let mut merged = vec![false; found.len()];
    for i in 0..found.len() {
        if found[i].hosts.is_empty() {
            continue;
        }
        match first.entry((found[i].code, found[i].pointer.clone())) {
            Entry::Vacant(e) => {
                e.insert((i, found[i].hosts.iter().cloned().collect()));
            }
            Entry::Occupied(mut e) => {
                let (j, seen) = e.get_mut();
                for h in std::mem::take(&mut found[i].hosts) {
                    if seen.insert(h.clone()) {
                        found[*j].hosts.push(h);
                    }
                }
                merged[i] = true;
            }
        }
    }
    drop(first);
    let mut index = 0;
    found.retain(|_| {
        index += 1;
        !merged[index - 1]
    });
    found.shrink_to_fit();
    for d in &mut found {
        if d.hosts.len() > 1 {
            let names: Vec<String> = d.hosts.iter().map(|h| format!("`{h}`")).collect();
            let note = format!(
                "this setting applies to {} hosts: {}",
                d.hosts.len(),
                names.join(", ")
            );
            d.help = Some(match d.help.take() {
                Some(h) => format!("{h}; {note}"),
                None => note,
            });
        }
    }
    found
}
pub use firstboot::is_host_layer;

/// A valid PostgreSQL identifier as pgimg writes it unquoted: lowercase.
pub fn is_pg_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && s.len() <= 63
}
