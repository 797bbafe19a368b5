//! Stage "deliver": the formats that bring a bare machine to the planned
//! state with no hand step — a kickstart for the Rocky/Alma installer, a
//! cloud-init user-data for cloud images, and PXE entries that boot the
//! installer with the host's kickstart.
//!
//! Both install paths carry the host's `overlay.tar.gz` byte for byte (it
//! lands as `/var/lib/pgimg/overlay.tar.gz`, so an operator can compare it
//! with the manifest), the same packages as `rpms.txt` and the same
//! repositories. Pure, like the rest of rendering.

pub(crate) mod cloudinit;
pub mod embed;
pub(crate) mod firewall;
pub(crate) mod kickstart;
pub(crate) mod pxe;

use crate::Error;
use crate::model::Host;
use crate::plan::HostPlan;
use crate::plan::context::HostContext;
use crate::render::templates::Templates;
use crate::spec::v1::{Distro, PatroniInstall, Role, SelinuxMode};

/// A host's context with the facts of one install format beside it
/// (`{{ks.…}}` in the kickstart, `{{pxe.…}}` in the PXE entries).
#[derive(serde::Serialize)]
pub(crate) struct WithFacts<'a> {
    #[serde(flatten)]
    pub host: &'a HostContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pxe: Option<serde_json::Value>,
}

/// Where both install paths keep the overlay on the host.
pub(crate) const OVERLAY_PATH: &str = "/var/lib/pgimg/overlay.tar.gz";

/// EC2 rejects user-data above this many bytes.
pub(crate) const USER_DATA_LIMIT: usize = 16_384;

pub(crate) use crate::facts::repos::{
    DISABLE_DISTRO_REPOS, custom_distro_mirrors, host_repos, repo_file,
};

/// The network facts of a host's install.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    pub address: String,
    pub ipv6: bool,
    pub prefix: u8,
    /// Dotted netmask (IPv4) or the prefix length (IPv6), as dracut's `ip=` wants it.
    pub netmask: String,
    pub gateway: Option<String>,
    pub dns: Vec<String>,
    pub fqdn: String,
    pub interface: Option<String>,
    pub mac: Option<String>,
}

impl Net {
    pub(crate) fn of(host: &Host) -> Net {
        let n = &host.config.network;
        let ipv6 = host.address.contains(':');
        let prefix = n.prefix.unwrap_or(if ipv6 { 64 } else { 24 });
        let netmask = if ipv6 {
            prefix.to_string()
        } else {
            let bits: u32 = if prefix >= 32 {
                u32::MAX
            } else {
                !(u32::MAX >> prefix)
            };
            std::net::Ipv4Addr::from(bits).to_string()
        };
        Net {
            address: host.address.clone(),
            ipv6,
            prefix,
            netmask,
            gateway: n.gateway.clone(),
            dns: n.dns.clone(),
            fqdn: fqdn(host),
            interface: host.boot.interface.clone(),
            mac: host.boot.mac.clone(),
        }
    }

    /// The kickstart `network --device=`: the named interface, else the one with the MAC, else the first with a link.
    pub(crate) fn ks_device(&self) -> String {
        self.interface
            .clone()
            .or_else(|| self.mac.clone())
            .unwrap_or_else(|| "link".into())
    }
}

pub(crate) fn fqdn(host: &Host) -> String {
    match &host.config.network.domain {
        Some(d) => format!("{}.{d}", host.name),
        None => host.name.clone(),
    }
}

pub(crate) fn distro_name(d: Distro) -> &'static str {
    crate::facts::repos::distro_name(d)
}

/// Shell commands both install paths run once the packages are in and the
/// overlay is unpacked: the pip install of Patroni, SELinux booleans, unit
/// enablement. Every word comes from a constrained spec type or the plan.
pub(crate) struct FirstBoot {
    /// `chown`/`chmod` of the declared directories, right after unpacking.
    pub dir_commands: Vec<String>,
    pub pip: bool,
    pub haproxy_boolean: bool,
    pub units: Vec<String>,
}

impl FirstBoot {
    pub(crate) fn of(host: &Host, plan: &HostPlan) -> FirstBoot {
        let c = &host.config;
        FirstBoot {
            dir_commands: dir_commands(plan),
            pip: host.has(Role::Pg) && c.patroni.install == PatroniInstall::Pip,
            haproxy_boolean: host.has(Role::Haproxy) && c.os.selinux != SelinuxMode::Disabled,
            units: plan.units.iter().cloned().collect(),
        }
    }

    pub(crate) fn venv_commands(host: &Host) -> Vec<String> {
        let venv = crate::plan::context::paths::PATRONI_VENV;
        let index = crate::facts::repos::python_index(host);
        vec![
            format!("python3.12 -m venv {venv}"),
            format!(
                "{venv}/bin/pip install --no-cache-dir --disable-pip-version-check --index-url {index} -r /etc/patroni/requirements.txt"
            ),
        ]
    }
}

/// Applies the owner and mode `overlay.list` shows to every declared
/// directory: `tar --no-overwrite-dir` leaves those of directories an RPM
/// created before (`/var/lib/etcd` 0750 from the etcd RPM, the pgBackRest
/// directories 0700 from pgbackrest's: `%files` of `extras/etcd/main/etcd.spec`
/// and `common/pgbackrest/main/pgbackrest.spec` in PGDG's packaging). One
/// `chown` per owner and one `chmod` per mode keep the user-data small.
pub(crate) fn dir_commands(plan: &HostPlan) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut owners: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut modes: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (path, e) in &plan.declared_dirs {
        owners
            .entry(format!("{}:{}", e.owner, e.group))
            .or_default()
            .push(path.as_str());
        modes.entry(e.mode).or_default().push(path.as_str());
    }
    let mut out: Vec<String> = owners
        .into_iter()
        .map(|(o, paths)| format!("chown {o} {}", paths.join(" ")))
        .collect();
    out.extend(
        modes
            .into_iter()
            .map(|(m, paths)| format!("chmod {m:04o} {}", paths.join(" "))),
    );
    out
}

/// What one host's delivery formats contribute to the build: the files,
/// and what the build should say about them.
pub(crate) struct Delivered {
    pub files: Vec<(String, Vec<u8>)>,
    /// The install file with the host's secrets embedded, when the build writes one.
    embedded: Option<String>,
    /// A host left without one because a value of its secrets is missing.
    embed_missing: Option<String>,
    compressed: Option<String>,
    too_big: Option<String>,
}

impl Delivered {
    /// Whether [`notes`] has anything to say of this host.
    pub(crate) fn has_notes(&self) -> bool {
        self.embedded.is_some()
            || self.embed_missing.is_some()
            || self.compressed.is_some()
            || self.too_big.is_some()
    }

    /// Only what the notes need: the files have gone to the sink.
    pub(crate) fn without_files(self) -> Delivered {
        Delivered {
            files: Vec::new(),
            ..self
        }
    }
}

/// Renders one host's kickstart, user-data and PXE entries.
pub(crate) fn render_host(
    templates: &Templates,
    host: &Host,
    plan: &HostPlan,
    overlay: &[u8],
) -> Result<Delivered, Error> {
    debug_assert_eq!(host.name, plan.name);
    let base = format!("hosts/{}", host.name);
    let mut d = Delivered {
        files: vec![(
            format!("{base}/kickstart.ks"),
            kickstart::render(templates, host, plan, overlay)?.into(),
        )],
        embedded: None,
        embed_missing: None,
        compressed: None,
        too_big: None,
    };
    match cloudinit::render(host, plan, overlay) {
        Ok(cloudinit::UserData::Plain(bytes)) => d.files.push((format!("{base}/user-data"), bytes)),
        Ok(cloudinit::UserData::Gzip { raw, bytes }) => {
            d.compressed = Some(format!("{} ({raw} → {} bytes)", host.name, bytes.len()));
            d.files.push((format!("{base}/user-data"), bytes));
        }
        Err(e) => d.too_big = Some(e),
    }
    for (path, text) in pxe::render(templates, host, plan)? {
        d.files.push((path, text.into()));
    }
    Ok(d)
}

/// The host's install file with its secrets embedded (`embed`): its
/// kickstart when it installs over PXE (`boot.mac`), else its user-data;
/// as (path under `secrets/`, bytes). `None` when the host has no secret,
/// lacks one (the build lists the missing references), or its user-data
/// cannot fit, which `notes` then reports with the other hosts that cannot.
pub(crate) fn render_embedded(
    templates: &Templates,
    (cluster, site, host): (&crate::model::Cluster, &crate::model::Site, &Host),
    plan: &HostPlan,
    overlay: &[u8],
    values: &crate::load::SecretValues,
    d: &mut Delivered,
) -> Result<Option<(String, Vec<u8>)>, Error> {
    let secrets = match embed::host_secrets(cluster, site, host, values) {
        None => return Ok(None),
        Some(Err(())) => {
            d.embed_missing = Some(host.name.clone());
            return Ok(None);
        }
        Some(Ok(s)) => s,
    };
    if host.boot.mac.is_some() {
        let ks = embed::kickstart(templates, host, plan, overlay, &secrets)?;
        let path = format!("secrets/{}/kickstart.ks", host.name);
        d.embedded = Some(path.clone());
        return Ok(Some((path, ks.into())));
    }
    match embed::user_data(host, plan, overlay, &secrets) {
        Ok(cloudinit::UserData::Plain(bytes) | cloudinit::UserData::Gzip { bytes, .. }) => {
            let path = format!("secrets/{}/user-data", host.name);
            d.embedded = Some(path.clone());
            Ok(Some((path, bytes)))
        }
        Err(e) => {
            d.too_big = Some(match d.too_big.take() {
                Some(t) => format!("{t}\n{e}"),
                None => e,
            });
            Ok(None)
        }
    }
}

/// The build's notes about its hosts' install formats, in fleet order;
/// fails, naming every host, when a user-data cannot fit.
pub(crate) fn notes(delivered: &[Delivered], no_mac: &[String]) -> Result<Vec<String>, Error> {
    let too_big: Vec<&str> = delivered
        .iter()
        .filter_map(|d| d.too_big.as_deref())
        .collect();
    if !too_big.is_empty() {
        return Err(Error::Delivery(too_big.join("\n")));
    }
    let mut notes = Vec::new();
    let compressed: Vec<&str> = delivered
        .iter()
        .filter_map(|d| d.compressed.as_deref())
        .collect();
    if !compressed.is_empty() {
        notes.push(format!(
            "user-data over {USER_DATA_LIMIT} bytes, delivered gzip-compressed (cloud-init unpacks it): {}",
            compressed.join(", ")
        ));
    }
    let embedded: Vec<&str> = delivered
        .iter()
        .filter_map(|d| d.embedded.as_deref())
        .collect();
    if !embedded.is_empty() {
        notes.push(format!(
            "install files with the hosts' secrets embedded (--embed-secrets; keep them like the secrets, see the README): {}",
            embedded.join(", ")
        ));
    }
    let missing: Vec<&str> = delivered
        .iter()
        .filter_map(|d| d.embed_missing.as_deref())
        .collect();
    if !missing.is_empty() {
        notes.push(format!(
            "no install file with embedded secrets for hosts missing a secret (listed above): {}",
            missing.join(", ")
        ));
    }
    if !no_mac.is_empty() {
        // A large fleet gets a count and a sample, not a wall of names.
        const SHOWN: usize = 12;
        let mut names = no_mac[..no_mac.len().min(SHOWN)].join(", ");
        if no_mac.len() > SHOWN {
            names.push_str(&format!(" and {} more", no_mac.len() - SHOWN));
        }
        notes.push(format!(
            "no PXE entries for {} host{} without `boot.mac`: {names}",
            no_mac.len(),
            if no_mac.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(notes)
}

/// Base64 (standard alphabet, padded) of `bytes`, wrapped at `width` characters (0: one line).
pub(crate) fn base64(bytes: &[u8], width: usize) -> String {
    use base64::Engine;
    let out = base64::engine::general_purpose::STANDARD.encode(bytes);
    if width == 0 {
        return out;
    }
    out.as_bytes()
        .chunks(width)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes(), 0), enc);
        }
        assert_eq!(base64(b"foobar", 4), "Zm9v\nYmFy");
    }
}
