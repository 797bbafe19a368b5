//! The lab's address and path mapping, its loopback guard, and the inverse
//! mapping that shows a lab build is a real build with the two mappings applied.

#[cfg(test)]
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::Error;
use crate::model::Fleet;
use crate::plan::context::Mapping;

/// Where loopback connections between lab hosts come from (see `Mapping::source`).
pub(crate) const LOOPBACK_SOURCE: &str = "127.0.0.1";

/// The lab mapping of a fleet: the `n`-th site (counting from 1 across the
/// fleet) gets `127.<net>.<n>.0/24`; its `i`-th host the address `.<i + 2>`
/// (Patroni refuses 127.0.0.1 as a connect address) and, as its own
/// stand-in for 127.0.0.1, `.<i + 130>`. Every absolute path goes under `<root>/<host>`.
pub(crate) fn lab_mapping(fleet: &Fleet, root: &str, net: u8) -> Result<Mapping, Error> {
    let mut m = Mapping {
        root: Some(root.trim_end_matches('/').to_string()),
        source: Some(LOOPBACK_SOURCE.to_string()),
        ..Mapping::default()
    };
    let mut n = 0u32;
    for c in &fleet.clusters {
        for s in &c.sites {
            n += 1;
            if n > 254 {
                return Err(Error::Input(
                    "the lab gives every site its own /24 of 127.0.0.0/8: at most 254 sites".into(),
                ));
            }
            for (i, h) in s.hosts.iter().enumerate() {
                if i + 130 > 254 {
                    return Err(Error::Input(format!(
                        "site `{}`: the lab maps at most 124 hosts per site",
                        s.name
                    )));
                }
                m.addresses
                    .insert(h.address.clone(), format!("127.{net}.{n}.{}", i + 2));
                m.localhost
                    .insert(h.name.clone(), format!("127.{net}.{n}.{}", i + 130));
            }
        }
    }
    assert_loopback(&m)?;
    Ok(m)
}

/// Refuses a mapping that would make the lab bind to or contact anything but loopback.
pub(crate) fn assert_loopback(m: &Mapping) -> Result<(), Error> {
    let all = m
        .addresses
        .values()
        .chain(m.localhost.values())
        .chain(m.source.iter());
    for a in all {
        match a.parse::<Ipv4Addr>() {
            Ok(ip) if ip.is_loopback() => {}
            _ => {
                return Err(Error::Input(format!(
                    "lab mapping: `{a}` is not in 127.0.0.0/8; the lab only uses loopback addresses"
                )));
            }
        }
    }
    Ok(())
}

/// Undoes the lab mapping on a rendered text: host roots are removed, mapped
/// addresses become the spec's again and each host's loopback stand-in becomes
/// 127.0.0.1. Replication rows of pg_hba, which name the connection source,
/// are the one thing it cannot undo (several spec addresses map to one source).
#[cfg(test)]
pub(crate) fn unmap(text: &str, m: &Mapping, hosts: &[String]) -> String {
    let mut out = text.to_string();
    let mut prefixes: Vec<String> = hosts.iter().map(|h| m.prefix(h)).collect();
    prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in prefixes.iter().filter(|p| !p.is_empty()) {
        out = out.replace(p.as_str(), "");
    }
    let mut pairs: BTreeMap<&str, &str> = BTreeMap::new();
    for (spec, lab) in &m.addresses {
        pairs.insert(lab, spec);
    }
    for lab in m.localhost.values() {
        pairs.insert(lab, "127.0.0.1");
    }
    replace_addresses(&out, &pairs)
}

#[cfg(test)]
/// Replaces whole dotted-quad tokens only, so `127.0.1.2` never rewrites `127.0.1.23`.
fn replace_addresses(text: &str, pairs: &BTreeMap<&str, &str>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let boundary_before = i == 0 || !(bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.');
        if boundary_before && bytes[i].is_ascii_digit() {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                j += 1;
            }
            // A trailing dot is punctuation, not part of the address.
            let mut end = j;
            while end > i && bytes[end - 1] == b'.' {
                end -= 1;
            }
            let token = &text[i..end];
            match pairs.get(token) {
                Some(r) => out.push_str(r),
                None => out.push_str(token),
            }
            i = end;
            continue;
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::RoleTree;
    use crate::load::SecretValues;
    use crate::source::SourceFile;

    fn build(mapping: Mapping) -> crate::render::ArtifactTree {
        let text = include_str!("../../examples/reference-cluster.yml");
        let v = crate::validate(
            SourceFile::new("reference-cluster.yml".to_string(), text.to_string()),
            false,
        )
        .unwrap_or_else(|_| panic!("the reference example is valid"));
        let secrets = super::super::lab_secrets(&v.fleet, &mapping).expect("lab secrets");
        let inputs = crate::BuildInputs {
            roles: RoleTree::embedded(),
            secrets: SecretValues {
                values: secrets.clone(),
            },
            mapping,
            overlays: Default::default(),
        };
        crate::build(&v, &inputs).expect("builds")
    }

    /// Without the things that name connection sources, the one place where
    /// the lab's source mapping is not invertible: pg_hba's replication rows,
    /// the row that admits the member's own connections, and the REST API's
    /// allowlist entries.
    fn without_replication_rows(s: &str) -> String {
        let mut in_allowlist = false;
        s.lines()
            .filter(|l| {
                if *l == "  allowlist:" {
                    in_allowlist = true;
                    return false;
                }
                if in_allowlist && l.starts_with("  - ") {
                    return false;
                }
                in_allowlist = false;
                !l.contains(" replication ") && !is_own_row(l)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// pg_hba's row for the member's own connections: `hostssl all all A/32`.
    fn is_own_row(l: &str) -> bool {
        let f: Vec<&str> = l.trim_start_matches("  - '").split_whitespace().collect();
        f.len() == 5 && f[..3] == ["hostssl", "all", "all"] && f[3].ends_with("/32")
    }

    /// The REST API allowlist of a patroni.yml.
    fn allowlist(s: &str) -> Vec<&str> {
        s.lines()
            .skip_while(|l| *l != "  allowlist:")
            .skip(1)
            .take_while(|l| l.starts_with("  - "))
            .map(str::trim)
            .collect()
    }

    #[test]
    fn a_lab_build_is_the_real_build_with_the_two_mappings() {
        let text = include_str!("../../examples/reference-cluster.yml");
        let v = crate::validate(
            SourceFile::new("r.yml".to_string(), text.to_string()),
            false,
        )
        .unwrap_or_else(|_| panic!("valid"));
        let lab_m = lab_mapping(&v.fleet, "/tmp/pgimg-lab/x", 9).expect("maps");
        let hosts: Vec<String> = v.fleet.hosts().map(|(_, _, h)| h.name.clone()).collect();
        let real = build(Mapping::default());
        let lab = build(lab_m.clone());
        // What lands on the hosts (rootfs, its listing, packages) and the
        // cluster's check script and runbooks. Formats that embed the
        // compressed overlay (kickstart, user-data) carry the same files.
        let public = |t: &crate::render::ArtifactTree| -> Vec<String> {
            t.files
                .keys()
                .filter(|p| {
                    p.contains("/rootfs/")
                        || p.starts_with("clusters/")
                        || p.ends_with("/overlay.list")
                        || p.ends_with("/rpms.txt")
                })
                .cloned()
                .collect()
        };
        assert_eq!(public(&real), public(&lab), "the same files");
        // overlay.list's size column grows with the mapped paths.
        let no_sizes = |s: &str| -> String {
            s.lines()
                .map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    format!("{} {} {}", f[0], f[1], f[3..].join(" "))
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut compared = 0;
        for path in public(&real) {
            let r = String::from_utf8_lossy(&real.files[&path].bytes).into_owned();
            let l = String::from_utf8_lossy(&lab.files[&path].bytes).into_owned();
            let unmapped = unmap(&l, &lab_m, &hosts);
            if path.ends_with("patroni.yml") {
                assert_eq!(
                    without_replication_rows(&r),
                    without_replication_rows(&unmapped),
                    "{path}"
                );
                let rows: Vec<&str> = l
                    .lines()
                    .filter(|x| x.contains(" replication replicator "))
                    .map(str::trim)
                    .collect();
                assert_eq!(
                    rows,
                    vec!["- 'hostssl replication replicator 127.0.0.1/32 scram-sha-256'"],
                    "{path}: the lab accepts replication from the loopback source only"
                );
                let own = |s: &str| -> Vec<String> {
                    s.lines()
                        .filter(|x| is_own_row(x))
                        .map(|x| x.trim().to_string())
                        .collect()
                };
                assert_eq!(
                    own(&l),
                    vec!["- 'hostssl all all 127.0.0.1/32 scram-sha-256'"],
                    "{path}: the lab admits the member's own connections from the loopback source"
                );
                assert_eq!(own(&r).len(), 1, "{path}: the real build has its own row");
                assert!(!own(&r)[0].contains("127."), "{path}: {:?}", own(&r));
                if !allowlist(&r).is_empty() {
                    assert_eq!(
                        allowlist(&l),
                        vec!["- '127.0.0.1'"],
                        "{path}: the lab's REST API admits the loopback source only"
                    );
                }
            } else if path.ends_with("/overlay.list") {
                assert_eq!(no_sizes(&r), no_sizes(&unmapped), "{path}");
            } else {
                assert_eq!(r, unmapped, "{path}");
            }
            if r != l {
                compared += 1;
            }
        }
        assert!(compared > 20, "the mapping changed {compared} files");
    }

    #[test]
    fn the_lab_mapping_is_loopback_only() {
        let mut m = Mapping::default();
        m.addresses.insert("10.0.0.1".into(), "10.0.0.1".into());
        assert!(assert_loopback(&m).is_err());
        m.addresses.insert("10.0.0.1".into(), "127.3.1.2".into());
        assert!(assert_loopback(&m).is_ok());
    }

    #[test]
    fn addresses_are_replaced_as_whole_tokens() {
        let mut p = BTreeMap::new();
        p.insert("127.0.1.2", "10.0.0.2");
        assert_eq!(
            replace_addresses("127.0.1.2:80 127.0.1.23 127.0.1.2. x127.0.1.2", &p),
            "10.0.0.2:80 127.0.1.23 10.0.0.2. x10.0.0.2"
        );
    }
}
