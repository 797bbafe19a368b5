//! Rules a host needs to come up on its first boot with no hand step:
//! backup credentials and storage that work on the site's kind of machine,
//! package versions that exist, a network and time zone the installer can
//! use, settings at the layer Patroni reads them from.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Ctx;
use crate::diag::{Code, Diagnostic};
use crate::facts::{catalog, repos, tz};
use crate::model::Host;
use crate::spec::v1::{PatroniInstall, RepoType, Role, S3KeyType};

/// `key_type: auto` reads EC2's instance metadata, which bare metal has not.
pub(super) fn s3_credentials(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        for s in &c.sites {
            let Some(metal) = s.hosts.iter().find(|h| h.boot.mac.is_some()) else {
                continue;
            };
            for h in s.with_role(Role::Pg) {
                for r in &h.config.pgbackrest.repos {
                    if r.kind == RepoType::S3 && r.key_type == S3KeyType::Auto {
                        out.push(
                            Diagnostic::error(
                                Code::S3AutoOnBareMetal,
                                &format!("{}/key_type", r.pointer),
                                format!(
                                    "`key_type: auto` takes S3 credentials from EC2's instance role, but site `{}` has bare-metal hosts (`{}` has `boot.mac`)",
                                    s.name, metal.name
                                ),
                            )
                            .expected("`key_type: shared` with `key` and `key_secret` references on a bare-metal site")
                            .help("without credentials every WAL archive fails and pg_wal grows until the disk is full; remove `key_type` (it defaults to `shared` here) and add `key: { env: … }`, `key_secret: { env: … }`"),
                        );
                    }
                }
            }
        }
    }
    out
}

/// A posix repository of a site with several members must be one shared
/// file system: a per-node directory dies with its node and splits the
/// backup history at every failover.
pub(super) fn shared_posix(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        for s in &c.sites {
            let members = s.with_role(Role::Pg).count();
            for h in s.with_role(Role::Pg) {
                let posix: Vec<_> = h
                    .config
                    .pgbackrest
                    .repos
                    .iter()
                    .filter(|r| r.kind == RepoType::Posix)
                    .collect();
                for r in &posix {
                    if r.mount.is_none() && members > 1 {
                        out.push(
                            Diagnostic::error(
                                Code::UnsharedPosixRepository,
                                &r.pointer,
                                format!(
                                    "posix repository `{}` is on each node's own disk, but site `{}` has {members} PostgreSQL members",
                                    r.path.as_deref().unwrap_or("/var/lib/pgbackrest"),
                                    s.name
                                ),
                            )
                            .expected("a `mount` (`server`, `export`) every member shares, or an S3 repository")
                            .help("backups on a node's disk die with the node, and after a failover the new leader starts a second history"),
                        );
                    }
                }
                if let Some(second) = posix.iter().filter(|r| r.mount.is_some()).nth(1) {
                    out.push(
                        Diagnostic::error(
                            Code::UnsharedPosixRepository,
                            &format!("{}/mount", second.pointer),
                            "a second mounted posix repository",
                        )
                        .expected("at most one posix repository with a `mount` per site"),
                    );
                }
            }
        }
    }
    out
}

/// Installing is opt-in and wipes only the disks the spec names.
pub(super) fn install_disks(ctx: &Ctx) -> Vec<Diagnostic> {
    ctx.fleet
        .hosts()
        .filter(|(_, _, h)| h.boot.install && h.boot.os_disk.is_none())
        .map(|(_, _, h)| {
            Diagnostic::error(
                Code::InstallWithoutDisk,
                &format!("{}/boot/install", h.pointer),
                format!(
                    "host `{}` installs by default but names no disk: the installer would have to guess which disks to wipe",
                    h.name
                ),
            )
            .expected("`boot.disk.os_disk` (and `data_disk`), preferably as `/dev/disk/by-id/…` or `/dev/disk/by-path/…`")
        })
        .collect()
}

/// A pin the catalog does not list is probably a typo or a version of
/// another channel (such as Patroni's PyPI releases for the RPM).
pub(super) fn package_pins(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, _, h) in ctx.fleet.hosts() {
        let c = &h.config;
        let mut pins: Vec<(String, &str, Option<&String>)> = Vec::new();
        if h.has(Role::Pg) {
            if c.patroni.install == PatroniInstall::Rpm {
                pins.push((
                    "patroni".into(),
                    "patroni/rpm_version",
                    Some(&c.patroni.rpm_version),
                ));
            }
            pins.push((
                "pgbackrest".into(),
                "pgbackrest/version",
                c.pgbackrest.version.as_ref(),
            ));
            pins.push((
                format!("postgresql{}-server", c.postgresql.major),
                "postgresql/version",
                c.postgresql.version.as_ref(),
            ));
        }
        if h.has(Role::Etcd) {
            pins.push(("etcd".into(), "etcd/version", c.etcd.version.as_ref()));
        }
        for (package, path, version) in pins {
            let (Some(v), Some(pointer)) = (version, h.origins.get(path)) else {
                continue;
            };
            let known = catalog::versions(&package);
            if known.is_empty() || catalog::knows(&package, v) {
                continue;
            }
            let mut d = Diagnostic::error(
                Code::UnknownPackageVersion,
                pointer,
                format!(
                    "`{package}` {v} is not in pgimg's package catalog (taken {})",
                    catalog::catalog().taken
                ),
            )
            .expected(format!("one of {}", known.join(", ")));
            if package == "patroni" {
                d = d.help("PGDG's Patroni RPM lags PyPI: `patroni.version` is the pip version, `patroni.rpm_version` the RPM's");
            } else {
                d = d.help("if the repository ships it now, refresh data/catalog.yaml with the command in its header");
            }
            out.push(d);
        }
    }
    out
}

fn network_of(ip: IpAddr, prefix: u8) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) if prefix <= 32 => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            Some(IpAddr::V4((u32::from(a) & mask).into()))
        }
        IpAddr::V6(a) if prefix <= 128 => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            Some(IpAddr::V6((u128::from(a) & mask).into()))
        }
        _ => None,
    }
}

/// The prefix length a host's address is configured with.
pub(super) fn prefix_of(h: &Host) -> u8 {
    let v6 = h.address.contains(':');
    h.config.network.prefix.unwrap_or(if v6 { 64 } else { 24 })
}

/// A site is one subnet: every address in the first host's, every gateway in its host's.
pub(super) fn subnets(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        for s in &c.sites {
            let Some(first) = s.hosts.first() else {
                continue;
            };
            let Ok(first_ip) = first.address.parse::<IpAddr>() else {
                continue;
            };
            let first_prefix = prefix_of(first);
            let site_net = network_of(first_ip, first_prefix);
            for h in &s.hosts {
                let Ok(ip) = h.address.parse::<IpAddr>() else {
                    continue;
                };
                let prefix = prefix_of(h);
                if ip.is_ipv4() == first_ip.is_ipv4() && network_of(ip, first_prefix) != site_net {
                    out.push(
                        Diagnostic::error(
                            Code::AddressOutsideSubnet,
                            &format!("{}/address", h.pointer),
                            format!(
                                "`{}` is outside site `{}`'s subnet {}/{first_prefix} (that of `{}`)",
                                h.address,
                                s.name,
                                site_net.map(|n| n.to_string()).unwrap_or_default(),
                                first.name
                            ),
                        )
                        .expected("an address in the site's subnet")
                        .help("check the address, or `network.prefix`: AWS's default VPC is 172.31.0.0/16, its subnets /20"),
                    );
                }
                if let Some(g) = &h.config.network.gateway
                    && let Ok(gw) = g.parse::<IpAddr>()
                    && gw.is_ipv4() == ip.is_ipv4()
                    && network_of(gw, prefix) != network_of(ip, prefix)
                {
                    out.push(
                        Diagnostic::error(
                            Code::GatewayOutsideSubnet,
                            &h.origin("network/gateway"),
                            format!(
                                "gateway `{g}` is outside the subnet {}/{prefix} of the hosts that use it",
                                network_of(ip, prefix).map(|n| n.to_string()).unwrap_or_default()
                            ),
                        )
                        .expected("a gateway the host reaches directly, inside its subnet"),
                    );
                }
            }
        }
    }
    out
}

pub(super) fn time_zones(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, _, h) in ctx.fleet.hosts() {
        let zone = &h.config.os.timezone;
        if tz::is_known(zone) {
            continue;
        }
        let mut d = Diagnostic::error(
            Code::UnknownTimeZone,
            &h.origin("os/timezone"),
            format!("`{zone}` is not a time zone of the tz database"),
        )
        .expected("a tz database name such as `UTC` or `Europe/Berlin`");
        let close = tz::closest(zone, 3);
        if !close.is_empty() {
            d = d.help(format!("did you mean {}?", close.join(", ")));
        }
        out.push(d);
    }
    out
}

fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(host.split(':').next().unwrap_or(host))
}

/// The repository URLs a host's install resolves.
fn install_urls(h: &Host) -> Vec<String> {
    let mut urls = vec![repos::installer_url(h), repos::appstream(h).baseurl];
    urls.extend(repos::pgdg(h).into_iter().map(|r| r.baseurl));
    if h.has(Role::Pg) && h.config.patroni.install == PatroniInstall::Pip {
        urls.push(repos::python_index(h));
    }
    urls
}

/// A host whose network pgimg configures (a gateway or a PXE install) gets
/// exactly the DNS servers of the spec; without one no repository host name resolves.
pub(super) fn dns_for_repositories(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, _, h) in ctx.fleet.hosts() {
        let n = &h.config.network;
        if !n.dns.is_empty() || (n.gateway.is_none() && h.boot.mac.is_none()) {
            continue;
        }
        let named = install_urls(h)
            .into_iter()
            .find(|u| url_host(u).is_some_and(|host| host.parse::<IpAddr>().is_err()));
        let Some(url) = named else { continue };
        let pointer = if n.gateway.is_some() {
            h.origin("network/gateway")
        } else {
            format!("{}/boot/mac", h.pointer)
        };
        out.push(
            Diagnostic::error(
                Code::NoDnsForRepositories,
                &pointer,
                format!(
                    "hosts with this static network have no DNS server, but their repositories are host names (`{url}`)"
                ),
            )
            .expected("`network.dns` with at least one server, or repository URLs with IP addresses")
            .help(if h.address.contains(':') {
                "a static IPv6 configuration ignores router-advertised DNS servers (RDNSS)"
            } else {
                "the installer and the installed host resolve names only through the servers the spec gives"
            }),
        );
    }
    out
}

/// A Patroni cluster, DR sites included, runs one PostgreSQL major: physical
/// replication does not cross majors.
pub(super) fn one_major(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for c in &ctx.fleet.clusters {
        let pg: Vec<&Host> = c.sites.iter().flat_map(|s| s.with_role(Role::Pg)).collect();
        // The odd ones out are those not on the cluster's most common major (the first on a tie).
        let mut count: BTreeMap<u32, usize> = BTreeMap::new();
        for h in &pg {
            *count.entry(h.config.postgresql.major).or_default() += 1;
        }
        let Some(major) = pg
            .iter()
            .map(|h| h.config.postgresql.major)
            .max_by_key(|m| {
                (
                    count[m],
                    std::cmp::Reverse(pg.iter().position(|h| h.config.postgresql.major == *m)),
                )
            })
        else {
            continue;
        };
        let Some(reference) = pg.iter().find(|h| h.config.postgresql.major == major) else {
            continue;
        };
        for h in pg.iter().filter(|h| h.config.postgresql.major != major) {
            out.push(
                Diagnostic::error(
                    Code::MixedMajors,
                    &h.origin("postgresql/major"),
                    format!(
                        "host `{}` runs PostgreSQL {} but the rest of cluster `{}` (such as `{}`) runs {major}",
                        h.name, h.config.postgresql.major, c.name, reference.name
                    ),
                )
                .expected(format!(
                    "PostgreSQL {major} on every member: streaming replication does not cross majors"
                )),
            );
        }
    }
    out
}

/// Patroni settings that live only in the DCS (`bootstrap.dcs`, written once
/// for the whole cluster): a host cannot have its own.
pub(super) const CLUSTER_WIDE_PATRONI: &[&str] = &[
    "ttl",
    "loop_wait",
    "retry_timeout",
    "maximum_lag_on_failover",
    "synchronous_mode",
    "synchronous_mode_strict",
    "synchronous_node_count",
    "use_pg_rewind",
    "use_slots",
];

/// True for a pointer into a host's own `settings`.
pub fn is_host_layer(pointer: &str) -> bool {
    pointer.contains("/hosts/")
}

pub(super) fn cluster_wide_settings(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, s, h) in ctx.fleet.hosts() {
        let set: BTreeMap<&str, &String> = CLUSTER_WIDE_PATRONI
            .iter()
            .filter_map(|k| {
                h.origins
                    .get(&format!("patroni/{k}"))
                    .filter(|p| is_host_layer(p))
                    .map(|p| (*k, p))
            })
            .collect();
        for (key, pointer) in set {
            out.push(
                Diagnostic::error(
                    Code::HostLevelClusterSetting,
                    pointer,
                    format!(
                        "`patroni.{key}` is set for host `{}` alone, but Patroni keeps it cluster-wide (`bootstrap.dcs`, read once when the cluster is created)",
                        h.name
                    ),
                )
                .expected(format!(
                    "`patroni.{key}` in the `settings` of site `{}`, its cluster or `defaults`",
                    s.name
                )),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_url_hosts() {
        let ip: IpAddr = "172.31.47.229".parse().unwrap();
        assert_eq!(network_of(ip, 20), Some("172.31.32.0".parse().unwrap()));
        assert_eq!(network_of(ip, 16), Some("172.31.0.0".parse().unwrap()));
        let v6: IpAddr = "2001:db8:e::11".parse().unwrap();
        assert_eq!(network_of(v6, 64), Some("2001:db8:e::".parse().unwrap()));
        assert_eq!(url_host("https://pypi.org/simple"), Some("pypi.org"));
        assert_eq!(url_host("http://[2001:db8::5]:8080/x"), Some("2001:db8::5"));
        assert_eq!(url_host("http://10.0.0.5/rocky/"), Some("10.0.0.5"));
    }
}
