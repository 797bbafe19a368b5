//! The boot lab's address map: every spec address of the fleet, one to one,
//! into 198.18.0.0/15 (RFC 2544's benchmarking range, never routed), and a
//! guard that refuses anything else. Only addresses move: paths, ports and
//! connection sources stay the real build's, so `pg_hba` sees each peer's own
//! address.

use std::net::Ipv4Addr;

use crate::Error;
use crate::model::Fleet;
use crate::plan::context::Mapping;

/// The prefix length of the boot lab's one bridge: every site on one segment.
pub(crate) const PREFIX_LEN: u8 = 15;

/// The `n`-th site of the fleet (from 1) gets `198.18.<n>.0/24`, its `i`-th host `.<i + 10>`.
pub(crate) fn boot_mapping(fleet: &Fleet) -> Result<Mapping, Error> {
    let mut m = Mapping::default();
    let mut n = 0u32;
    for c in &fleet.clusters {
        for s in &c.sites {
            n += 1;
            if n > 255 {
                return Err(Error::Input(
                    "the boot lab gives every site a /24 of 198.18.0.0/16: at most 255 sites"
                        .into(),
                ));
            }
            for (i, h) in s.hosts.iter().enumerate() {
                if i + 10 > 254 {
                    return Err(Error::Input(format!(
                        "site `{}`: the boot lab maps at most 244 hosts per site",
                        s.name
                    )));
                }
                for a in std::iter::once(&h.address).chain(h.extra_addresses.iter()) {
                    if a.contains(':') {
                        return Err(Error::Input(format!(
                            "host `{}`: the boot lab maps IPv4 addresses only, not `{a}`",
                            h.name
                        )));
                    }
                }
                m.addresses
                    .insert(h.address.clone(), format!("198.18.{n}.{}", i + 10));
            }
        }
    }
    // The instance metadata service's link-local address is not the lab's
    // to contact: its stand-in is (`standins.rs`).
    m.addresses.insert(
        super::standins::IMDS.into(),
        super::standins::ADDRESS.into(),
    );
    assert_lab_range(&m)?;
    Ok(m)
}

/// Whether the boot lab may configure or contact `ip`: 198.18.0.0/15 or loopback.
pub(crate) fn in_lab_range(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback() || (o[0] == 198 && (o[1] & 0xfe) == 18)
}

/// Refuses an address the boot lab may not configure or contact.
pub(crate) fn check_address(a: &str) -> Result<Ipv4Addr, Error> {
    match a.parse::<Ipv4Addr>() {
        Ok(ip) if in_lab_range(ip) => Ok(ip),
        _ => Err(Error::Input(format!(
            "boot lab: `{a}` is outside 198.18.0.0/15 and 127.0.0.0/8; the boot lab configures and contacts nothing else"
        ))),
    }
}

/// Refuses a mapping with any target outside the lab's ranges.
pub(crate) fn assert_lab_range(m: &Mapping) -> Result<(), Error> {
    for a in m
        .addresses
        .values()
        .chain(m.localhost.values())
        .chain(m.source.iter())
    {
        check_address(a)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::RoleTree;
    use crate::load::SecretValues;
    use crate::source::SourceFile;

    fn build(v: &crate::Validated, mapping: Mapping) -> crate::render::ArtifactTree {
        let values = crate::lab::lab_secrets(&v.fleet, &mapping).expect("lab secrets");
        let inputs = crate::BuildInputs {
            roles: RoleTree::embedded(),
            secrets: SecretValues { values },
            mapping,
            overlays: Default::default(),
        };
        crate::build(v, &inputs).expect("builds")
    }

    /// Replaces whole dotted quads only (`198.18.1.1` never rewrites `198.18.1.10`).
    fn unmap(text: &str, m: &Mapping) -> String {
        let mut out = String::with_capacity(text.len());
        let mut token = String::new();
        let flush = |token: &mut String, out: &mut String| {
            let t = token.trim_end_matches('.');
            let dots = &token[t.len()..];
            match m.addresses.iter().find(|(_, lab)| lab.as_str() == t) {
                Some((spec, _)) => out.push_str(spec),
                None => out.push_str(t),
            }
            out.push_str(dots);
            token.clear();
        };
        for ch in text.chars() {
            if ch.is_ascii_digit() || ch == '.' {
                token.push(ch);
            } else {
                flush(&mut token, &mut out);
                out.push(ch);
            }
        }
        flush(&mut token, &mut out);
        out
    }

    fn without_sizes(s: &str) -> String {
        s.lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{} {} {}", f[0], f[1], f[3..].join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_boot_lab_build_is_the_real_build_with_the_address_map_only() {
        for (name, text) in [
            (
                "reference-cluster.yml",
                include_str!("../../../examples/reference-cluster.yml"),
            ),
            ("minimal.yml", include_str!("../../../examples/minimal.yml")),
        ] {
            let v = crate::validate(SourceFile::new(name.to_string(), text.to_string()), false)
                .unwrap_or_else(|_| panic!("{name} is valid"));
            let m = boot_mapping(&v.fleet).expect("maps");
            let real = build(&v, Mapping::default());
            let lab = build(&v, m.clone());
            let real_paths: Vec<&String> = real.files.keys().collect();
            let lab_paths: Vec<&String> = lab.files.keys().collect();
            assert_eq!(real_paths, lab_paths, "{name}: the same files");
            let mut changed = 0;
            for (path, f) in &real.files {
                // Compressed formats (overlay, the kickstart and user-data that
                // embed it, their digests) carry the files compared here.
                let text_of = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
                let (Some(r), Some(l)) = (text_of(&f.bytes), text_of(&lab.files[path].bytes))
                else {
                    continue;
                };
                // The secrets are the lab's own: certificates for its addresses.
                if path.starts_with("secrets/")
                    || path.ends_with(".ks")
                    || path.ends_with("user-data")
                    || path.ends_with("manifest.json")
                    || path.ends_with("SHA256SUMS")
                {
                    continue;
                }
                let (r, l) = if path.ends_with("overlay.list") {
                    // The size column follows the length of the addresses in a file.
                    (without_sizes(&r), without_sizes(&l))
                } else {
                    (r, l)
                };
                assert_eq!(r, unmap(&l, &m), "{name}: {path}");
                if r != l {
                    changed += 1;
                }
            }
            assert!(changed >= 3, "{name}: the map changed {changed} files");
        }
    }

    #[test]
    fn the_metadata_endpoint_moves_with_the_address_map_and_names_do_not() {
        let text = std::fs::read_to_string("examples/reference-cluster.yml").expect("reads");
        let v = crate::validate(
            SourceFile::new("reference-cluster.yml".to_string(), text),
            false,
        )
        .expect("valid");
        let m = boot_mapping(&v.fleet).expect("maps");
        assert_eq!(m.url("http://169.254.169.254"), "http://198.19.255.254");
        assert_eq!(
            m.url("http://169.254.169.254:80/latest/api/token"),
            "http://198.19.255.254:80/latest/api/token"
        );
        assert_eq!(
            m.url("https://secrets.example.com/pgimg"),
            "https://secrets.example.com/pgimg"
        );
        assert_eq!(m.url("not a url"), "not a url");
    }

    #[test]
    fn the_guard_refuses_addresses_outside_the_lab_ranges() {
        for ok in ["198.18.0.1", "198.19.255.254", "127.0.0.1", "127.9.1.2"] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "198.20.0.1",
            "198.17.255.255",
            "10.0.0.1",
            "172.31.47.229",
            "::1",
            "x",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        let mut m = Mapping::default();
        m.addresses.insert("10.0.0.1".into(), "10.0.0.1".into());
        assert!(assert_lab_range(&m).is_err());
    }
}
