//! Stage "deliver": the formats that bring a bare machine to the planned
//! state with no hand step — a kickstart for the Rocky/Alma installer, a
//! cloud-init user-data for cloud images, and PXE entries that boot the
//! installer with the host's kickstart.
//!
//! Both install paths carry the host's `overlay.tar.gz` byte for byte (it
//! lands as `/var/lib/pgimg/overlay.tar.gz`, so an operator can compare it
//! with the manifest), the same packages as `rpms.txt` and the same
//! repositories. Pure, like the rest of rendering.

pub mod cloudinit;
pub mod kickstart;
pub mod pxe;

use crate::Error;
use crate::model::Host;
use crate::plan::HostPlan;
use crate::plan::context::HostContext;
use crate::render::templates::Templates;
use crate::spec::v1::{Distro, PatroniInstall, Role, SelinuxMode};

/// A host's context with the facts of one install format beside it
/// (`{{ks.…}}` in the kickstart, `{{pxe.…}}` in the PXE entries).
#[derive(serde::Serialize)]
pub struct WithFacts<'a> {
    #[serde(flatten)]
    pub host: &'a HostContext,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pxe: Option<serde_json::Value>,
}

/// Where both install paths keep the overlay on the host.
pub const OVERLAY_PATH: &str = "/var/lib/pgimg/overlay.tar.gz";

/// EC2 rejects user-data above this many bytes.
pub const USER_DATA_LIMIT: usize = 16_384;

/// A package repository as both formats declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub id: String,
    pub name: String,
    pub baseurl: String,
    /// `None` for the distribution's repositories: the release package installs their key.
    pub gpgkey: Option<String>,
}

/// The network facts of a host's install.
#[derive(Debug, Clone)]
pub struct Net {
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
    pub fn of(host: &Host) -> Net {
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
    pub fn ks_device(&self) -> String {
        self.interface
            .clone()
            .or_else(|| self.mac.clone())
            .unwrap_or_else(|| "link".into())
    }
}

pub fn fqdn(host: &Host) -> String {
    match &host.config.network.domain {
        Some(d) => format!("{}.{d}", host.name),
        None => host.name.clone(),
    }
}

pub fn distro_name(d: Distro) -> &'static str {
    match d {
        Distro::Rocky => "Rocky Linux",
        Distro::Alma => "AlmaLinux",
    }
}

/// The distribution's own tree of a repository (`BaseOS`, `AppStream`) for `arch`.
pub fn distro_repo(d: Distro, repo: &str, arch: &str) -> String {
    match d {
        Distro::Rocky => format!("https://dl.rockylinux.org/pub/rocky/9/{repo}/{arch}/os/"),
        Distro::Alma => format!("https://repo.almalinux.org/almalinux/9/{repo}/{arch}/os/"),
    }
}

/// The install tree the installer boots from and installs BaseOS out of.
pub fn baseos_url(host: &Host) -> String {
    host.config
        .repos
        .baseos
        .clone()
        .unwrap_or_else(|| distro_repo(host.config.os.distro, "BaseOS", "x86_64"))
}

pub fn appstream_url(host: &Host) -> String {
    host.config
        .repos
        .appstream
        .clone()
        .unwrap_or_else(|| distro_repo(host.config.os.distro, "AppStream", "x86_64"))
}

/// True when the spec names its own BaseOS/AppStream mirrors, which then
/// replace the distribution's repositories on the installed host.
pub fn custom_distro_mirrors(host: &Host) -> bool {
    host.config.repos.baseos.is_some() || host.config.repos.appstream.is_some()
}

/// The PGDG repositories of a host, as in PGDG's own `pgdg-redhat-all.repo`
/// for EL9. The release is written as `9`: the installer's `$releasever` can
/// be a point release (`9.4`), for which PGDG has no tree.
pub fn pgdg_repos(host: &Host) -> Vec<Repo> {
    let base = &host.config.repos.pgdg;
    let major = host.config.postgresql.major;
    let key = Some(format!("{base}/keys/PGDG-RPM-GPG-KEY-RHEL"));
    vec![
        Repo {
            id: format!("pgdg{major}"),
            name: format!("PostgreSQL {major} for RHEL 9 - $basearch"),
            baseurl: format!("{base}/{major}/redhat/rhel-9-$basearch"),
            gpgkey: key.clone(),
        },
        Repo {
            id: "pgdg-common".into(),
            name: "PostgreSQL common RPMs for RHEL 9 - $basearch".into(),
            baseurl: format!("{base}/common/redhat/rhel-9-$basearch"),
            gpgkey: key.clone(),
        },
        Repo {
            id: "pgdg-rhel9-extras".into(),
            name: "Extra packages to support some RPMs in the PostgreSQL RPM repo - $basearch"
                .into(),
            baseurl: format!("{base}/common/pgdg-rhel9-extras/redhat/rhel-9-$basearch"),
            gpgkey: key,
        },
    ]
}

/// The distribution's key file, installed by its release package.
pub fn distro_key(d: Distro) -> &'static str {
    match d {
        Distro::Rocky => "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9",
        Distro::Alma => "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-9",
    }
}

/// The repositories the installed host keeps: the spec's BaseOS/AppStream
/// mirrors when it names them (the image's or release package's otherwise),
/// then PGDG, all with signature checks.
pub fn host_repos(host: &Host) -> Vec<Repo> {
    let d = host.config.os.distro;
    let mut out = Vec::new();
    if custom_distro_mirrors(host) {
        for (id, name, url) in [
            ("pgimg-baseos", "BaseOS", baseos_url(host)),
            ("pgimg-appstream", "AppStream", appstream_url(host)),
        ] {
            out.push(Repo {
                id: id.into(),
                name: format!("{} 9 - {name} (mirror)", distro_name(d)),
                baseurl: url,
                gpgkey: Some(distro_key(d).into()),
            });
        }
    }
    out.extend(pgdg_repos(host));
    out
}

/// `sed` that switches the distribution's own BaseOS/AppStream off, for hosts that use mirrors.
pub const DISABLE_DISTRO_REPOS: &str = "sed -i -e '/^\\[baseos\\]/,/^\\[/ s/^enabled=.*/enabled=0/' -e '/^\\[appstream\\]/,/^\\[/ s/^enabled=.*/enabled=0/' /etc/yum.repos.d/*.repo";

/// The repositories as a `.repo` file.
pub fn repo_file(repos: &[Repo]) -> String {
    let mut out = String::from("# Repositories of this host, generated by pgimg.\n");
    for r in repos {
        out.push_str(&format!(
            "\n[{}]\nname={}\nbaseurl={}\nenabled=1\ngpgcheck=1\n",
            r.id, r.name, r.baseurl
        ));
        if let Some(k) = &r.gpgkey {
            if k.starts_with("file://") {
                out.push_str(&format!("gpgkey={k}\n"));
            } else {
                // PGDG signs its repository metadata too, as its own repo file requires.
                out.push_str(&format!("repo_gpgcheck=1\ngpgkey={k}\n"));
            }
        }
    }
    out
}

/// Shell commands both install paths run once the packages are in and the
/// overlay is unpacked: the pip install of Patroni, SELinux booleans, unit
/// enablement. Every word comes from a constrained spec type or the plan.
pub struct FirstBoot {
    pub pip: bool,
    pub haproxy_boolean: bool,
    pub units: Vec<String>,
}

impl FirstBoot {
    pub fn of(host: &Host, plan: &HostPlan) -> FirstBoot {
        let c = &host.config;
        FirstBoot {
            pip: host.has(Role::Pg) && c.patroni.install == PatroniInstall::Pip,
            haproxy_boolean: host.has(Role::Haproxy) && c.os.selinux != SelinuxMode::Disabled,
            units: plan.units.iter().cloned().collect(),
        }
    }

    pub fn venv_commands() -> Vec<String> {
        let venv = crate::plan::context::paths::PATRONI_VENV;
        vec![
            format!("python3.12 -m venv {venv}"),
            format!(
                "{venv}/bin/pip install --no-cache-dir --disable-pip-version-check -r /etc/patroni/requirements.txt"
            ),
        ]
    }
}

/// What one host's delivery formats contribute to the build: the files,
/// and what the build should say about them.
pub struct Delivered {
    pub files: Vec<(String, Vec<u8>)>,
    compressed: Option<String>,
    too_big: Option<String>,
}

impl Delivered {
    /// Only what the notes need: the files have gone to the sink.
    pub fn without_files(self) -> Delivered {
        Delivered {
            files: Vec::new(),
            ..self
        }
    }
}

/// Renders one host's kickstart, user-data and PXE entries.
pub fn render_host(
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

/// The build's notes about its hosts' install formats, in fleet order;
/// fails, naming every host, when a user-data cannot fit.
pub fn notes(delivered: &[Delivered], no_mac: &[String]) -> Result<Vec<String>, Error> {
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
pub fn base64(bytes: &[u8], width: usize) -> String {
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
