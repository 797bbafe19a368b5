//! Rules about names, addresses and ports.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Ctx, PortFact};
use crate::diag::{Code, Diagnostic};
use crate::spec::v1::{HbaMethod, HbaType, Role};

/// RFC 1123: labels of 1–63 letters, digits and hyphens, not starting or ending with a hyphen; 253 in all.
pub(super) fn is_rfc1123(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub(super) fn host_names(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for (_, _, h) in ctx.fleet.hosts() {
        let p = format!("{}/name", h.pointer);
        if !is_rfc1123(&h.name) {
            out.push(
                Diagnostic::error(Code::InvalidHostName, &p, format!("invalid host name `{}`", h.name))
                    .expected("an RFC 1123 host name: labels of 1 to 63 letters, digits or `-`, not starting or ending with `-`"),
            );
        }
        let key = h.name.to_ascii_lowercase();
        if let Some((first, by)) = seen.get(&key) {
            out.push(
                Diagnostic::error(
                    Code::DuplicateHostName,
                    &p,
                    format!("duplicate host name `{}`", h.name),
                )
                .expected("a name no other host of the fleet has")
                .help(format!("first used at {} by host `{by}`", ctx.place(first))),
            );
        } else {
            seen.insert(key, (p, &h.name));
        }
    }
    out
}

pub(super) fn addresses(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<IpAddr, (String, &str)> = BTreeMap::new();
    for (_, _, h) in ctx.fleet.hosts() {
        let all = std::iter::once((format!("{}/address", h.pointer), &h.address)).chain(
            h.extra_addresses
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("{}/extra_addresses/{i}", h.pointer), a)),
        );
        let mut family = None;
        for (p, a) in all {
            match a.parse::<IpAddr>() {
                Err(_) => out.push(
                    Diagnostic::error(
                        Code::InvalidAddress,
                        &p,
                        format!("invalid IP address `{a}`"),
                    )
                    .expected(
                        "an IPv4 address such as `10.0.0.5` or an IPv6 address such as `fd00::5`",
                    ),
                ),
                Ok(ip) => {
                    if family.is_none() {
                        family = Some(ip.is_ipv4());
                    }
                    if ip.is_unspecified() || ip.is_multicast() {
                        out.push(
                            Diagnostic::error(
                                Code::InvalidAddress,
                                &p,
                                format!("`{a}` cannot be a host's address"),
                            )
                            .expected("a unicast address"),
                        );
                    }
                    if let Some((first, by)) = seen.get(&ip) {
                        out.push(
                            Diagnostic::error(
                                Code::DuplicateAddress,
                                &p,
                                format!("duplicate address `{a}`"),
                            )
                            .expected("an address no other host of the fleet has")
                            .help(format!("first used at {} by host `{by}`", ctx.place(first))),
                        );
                    } else {
                        seen.insert(ip, (p, &h.name));
                    }
                }
            }
        }
        let net = &h.config.network;
        let others = net
            .gateway
            .iter()
            .map(|g| ("network/gateway".to_string(), g))
            .chain(
                net.dns
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (format!("network/dns/{i}"), d)),
            );
        for (path, a) in others {
            let p = match path.rsplit_once('/') {
                Some((parent, idx)) if idx.parse::<usize>().is_ok() => {
                    format!("{}/{idx}", h.origin(parent))
                }
                _ => h.origin(&path),
            };
            match a.parse::<IpAddr>() {
                Err(_) => out.push(
                    Diagnostic::error(
                        Code::InvalidAddress,
                        &p,
                        format!("invalid IP address `{a}`"),
                    )
                    .expected("an IPv4 or IPv6 address")
                    .for_host(&h.name),
                ),
                Ok(ip)
                    if path == "network/gateway" && family.is_some_and(|v4| v4 != ip.is_ipv4()) =>
                {
                    out.push(
                        Diagnostic::error(
                            Code::GatewayFamily,
                            &p,
                            format!(
                                "gateway `{a}` is not of the same address family as host `{}` ({})",
                                h.name, h.address
                            ),
                        )
                        .expected("a gateway of the host's address family")
                        .for_host(&h.name),
                    )
                }
                Ok(_) => {}
            }
        }
    }
    out
}

/// Port clashes and ports meant for clients that the firewall opens to no
/// one, over the ports the host's roles open as planned from `role.yaml`
/// (`Ctx::ports`): pgimg keeps no table of role ports of its own.
pub(super) fn ports(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, s, h) in ctx.fleet.hosts() {
        // A site without `pg` hosts is PG0200 already: nothing to reach there.
        let has_pg = s.with_role(Role::Pg).next().is_some();
        let Some(ports) = ctx.ports.get(&h.name) else {
            continue;
        };
        // Point at whichever setting the user wrote; a built-in default cannot be edited.
        let written = |p: &PortFact| {
            p.setting
                .as_deref()
                .is_some_and(|s| h.origins.contains_key(s))
        };
        let origin = |p: &PortFact| match &p.setting {
            Some(s) => h.origin(s),
            None => h.pointer.clone(),
        };
        for (i, p) in ports.iter().enumerate() {
            let Some(port) = p.port else { continue };
            let first = ports[..i]
                .iter()
                .find(|q| q.port == Some(port) && q.proto == p.proto);
            if let Some(first) = first {
                let at = if written(p) || !written(first) {
                    origin(p)
                } else {
                    origin(first)
                };
                out.push(
                    Diagnostic::error(
                        Code::PortCollision,
                        &at,
                        format!(
                            "port {port} on host `{}` is used by both {} and {}",
                            h.name, first.service, p.service
                        ),
                    )
                    .expected("a port no other service of this host uses")
                    .for_host(&h.name),
                );
            }
            if h.config.os.firewall && has_pg && p.for_clients && p.sources == 0 {
                out.push(
                    Diagnostic::error(
                        Code::ClosedClientPort,
                        &h.origin("network/client_networks"),
                        format!(
                            "the firewall of host `{}` opens port {port} ({}) to no source: no client reaches it",
                            h.name, p.service
                        ),
                    )
                    .expected("`network.client_networks`: the networks clients connect from, such as `10.20.0.0/16`")
                    .for_host(&h.name),
                );
            }
        }
    }
    out
}

/// Client networks must be networks (`10.20.0.0/16`, `fd00::/64`).
pub(super) fn client_networks(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, _, h) in ctx.fleet.hosts() {
        for (i, n) in h.config.network.client_networks.iter().enumerate() {
            if parse_cidr(n).is_none() {
                out.push(
                    Diagnostic::error(
                        Code::InvalidAddress,
                        &format!("{}/{i}", h.origin("network/client_networks")),
                        format!("invalid network `{n}`"),
                    )
                    .expected("an IPv4 or IPv6 address with a prefix length that fits it, such as `10.20.0.0/16`")
                    .for_host(&h.name),
                );
            }
        }
    }
    out
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip: IpAddr = a.parse().ok()?;
    let prefix: u8 = p.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

pub(super) fn pg_hba(ctx: &Ctx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (_, _, h) in ctx.fleet.hosts().filter(|(_, _, h)| h.has(Role::Pg)) {
        let pg = &h.config.postgresql;
        let base = h.origin("postgresql/pg_hba");
        for (i, rule) in pg.pg_hba.iter().enumerate() {
            let p = format!("{base}/{i}");
            match (rule.kind, &rule.address) {
                (HbaType::Local, Some(_)) => out.push(
                    Diagnostic::error(
                        Code::HbaAddress,
                        &format!("{p}/address"),
                        "a `local` row takes no address",
                    )
                    .expected("no `address` for `type: local`")
                    .for_host(&h.name),
                ),
                (HbaType::Local, None) => {}
                (_, None) => out.push(
                    Diagnostic::error(
                        Code::HbaAddress,
                        &p,
                        format!("a `{}` row needs an address", kind_name(rule.kind)),
                    )
                    .expected("an `address` such as `10.0.0.0/8`")
                    .for_host(&h.name),
                ),
                (_, Some(a)) => {
                    if parse_cidr(&a.0).is_none() {
                        out.push(
                            Diagnostic::error(
                                Code::HbaAddress,
                                &format!("{p}/address"),
                                format!("invalid address `{a}`"),
                            )
                            .expected("an IPv4 or IPv6 address with a prefix length that fits it")
                            .for_host(&h.name),
                        );
                    }
                }
            }
            let remote = match (rule.kind, &rule.address) {
                (HbaType::Local, _) => false,
                (_, Some(a)) => parse_cidr(&a.0).is_none_or(|(ip, prefix)| {
                    !(ip.is_loopback() && prefix >= if ip.is_ipv4() { 8 } else { 128 })
                }),
                (_, None) => true,
            };
            if rule.method == HbaMethod::Trust && remote && !pg.allow_remote_trust {
                out.push(
                    Diagnostic::error(
                        Code::RemoteTrust,
                        &format!("{p}/method"),
                        format!(
                            "`trust` for `{}` lets anyone who reaches the host log in as `{}` without a password",
                            rule.address.as_ref().map(|a| a.0.as_str()).unwrap_or("any address"),
                            rule.user
                        ),
                    )
                    .expected("`scram-sha-256`, or `trust` only for `local` or loopback rows")
                    .help("set `postgresql.allow_remote_trust: true` to accept this deliberately")
                    .for_host(&h.name),
                );
            }
        }
    }
    out
}

fn kind_name(k: HbaType) -> &'static str {
    match k {
        HbaType::Local => "local",
        HbaType::Host => "host",
        HbaType::Hostssl => "hostssl",
        HbaType::Hostnossl => "hostnossl",
    }
}

/// A host with a MAC gets PXE entries whose kernel line names the URL of its
/// kickstart; without `repos.artifacts` there is none to name.
pub(super) fn network_boot(ctx: &Ctx) -> Vec<Diagnostic> {
    ctx.fleet
        .hosts()
        .filter(|(_, _, h)| h.boot.mac.is_some() && h.config.repos.artifacts.is_none())
        .map(|(_, _, h)| {
            Diagnostic::error(
                Code::PxeWithoutArtifacts,
                &format!("{}/boot/mac", h.pointer),
                format!(
                    "host `{}` has a MAC, so it gets PXE entries, but no `repos.artifacts` says where its installer fetches `hosts/{}/kickstart.ks`",
                    h.name, h.name
                ),
            )
            .expected("`repos.artifacts` set for this host, its site, its cluster or `defaults`")
            .help("set `repos.artifacts` to the base URL the build output is served from, such as `http://boot.example.com/pgimg`, or remove `boot.mac`")
        })
        .collect()
}
