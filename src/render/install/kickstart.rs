//! `hosts/<host>/kickstart.ks`: the template `kickstart/kickstart.ks.hbs`
//! rendered with the host's context plus a `ks` block of install facts.
//!
//! The overlay travels inside the file (base64 in `%post`), so fetching the
//! one kickstart is enough to install the host.

use serde_json::{Value, json};

use super::{FirstBoot, Net, OVERLAY_PATH};
use crate::Error;
use crate::model::Host;
use crate::plan::HostPlan;
use crate::render::manifest::sha256;
use crate::render::templates::Templates;
use crate::spec::v1::SelinuxMode;

pub(crate) const TEMPLATE: &str = "kickstart/kickstart.ks.hbs";

/// The `ks` block of the template context.
pub(crate) fn facts(host: &Host, plan: &HostPlan, overlay: &[u8]) -> Value {
    let c = &host.config;
    let net = Net::of(host);
    let mut disks: Vec<String> = Vec::new();
    disks.extend(host.boot.os_disk.as_deref().map(ks_disk));
    disks.extend(host.boot.data_disk.as_deref().map(ks_disk));
    let data_volume = host.boot.data_disk.as_ref().map(|d| {
        json!({
            "disk": ks_disk(d),
            "mount": data_mount(host),
            "size": host.boot.data_size_gib.map(|g| (u64::from(g) * 1024).to_string()),
        })
    });
    let first = FirstBoot::of(host, plan);
    let repos = super::host_repos(host);
    json!({
        "distro_name": super::distro_name(c.os.distro),
        "url": crate::facts::repos::installer_url(host),
        "appstream": crate::facts::repos::appstream(host).baseurl,
        "pgdg_repos": crate::facts::repos::pgdg(host).iter().map(|r| json!({
            "id": r.id,
            "baseurl": r.baseurl,
            "includepkgs": r.includepkgs.join(","),
        })).collect::<Vec<_>>(),
        "repo_file": super::repo_file(&repos),
        "custom_mirrors": super::custom_distro_mirrors(host),
        "disable_distro_repos": super::DISABLE_DISTRO_REPOS,
        "lang": c.os.lang,
        "keyboard": c.os.keyboard,
        "timezone": c.os.timezone,
        "network": {
            "device": net.ks_device(),
            "ipv6": net.ipv6,
            "address": net.address,
            "prefix": net.prefix,
            "netmask": net.netmask,
            "gateway": net.gateway,
            "nameservers": net.dns.join(","),
            "fqdn": net.fqdn,
        },
        "admin_user": c.os.admin_user,
        "ssh_keys": c.os.ssh_keys,
        "selinux": match c.os.selinux {
            SelinuxMode::Enforcing => "--enforcing",
            SelinuxMode::Permissive => "--permissive",
            SelinuxMode::Disabled => "--disabled",
        },
        "selinux_on": c.os.selinux != SelinuxMode::Disabled,
        "firewall": c.os.firewall,
        "firewall_commands": super::firewall::commands(host, plan),
        "os_disk": host.boot.os_disk.as_deref().map(ks_disk),
        "disks": disks.join(","),
        "data_volume": data_volume,
        "packages": plan.packages.iter().cloned().collect::<Vec<_>>(),
        "overlay_path": OVERLAY_PATH,
        "overlay_sha256": sha256(overlay),
        "overlay_base64": super::base64(overlay, 76),
        "pip": first.pip,
        "venv": FirstBoot::venv_commands(host),
        "haproxy_boolean": first.haproxy_boolean,
        "units": first.units.join(" "),
        "dir_commands": first.dir_commands,
    })
}

/// A disk as the kickstart names it: a kernel name (`sda`), or a stable
/// name as anaconda's documentation writes it, `disk/by-id/…` without
/// `/dev/` (RHEL 9 "Automatically installing RHEL", `ignoredisk`/`clearpart`:
/// `--only-use=disk/by-id/…`, `--drives=disk/by-id/…`).
pub(crate) fn ks_disk(disk: &str) -> String {
    disk.strip_prefix("/dev/").unwrap_or(disk).to_string()
}

/// Where a dedicated data volume is mounted: the parent of the data
/// directory, so that the data directory itself stays a plain directory
/// PostgreSQL creates (initdb wants it empty and owned by postgres); the
/// directory itself only when its parent is `/`.
pub(crate) fn data_mount(host: &Host) -> String {
    let dir = &host.config.postgresql.data_dir;
    match dir.rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent.to_string(),
        _ => dir.clone(),
    }
}

pub(crate) fn render(
    templates: &Templates,
    host: &Host,
    plan: &HostPlan,
    overlay: &[u8],
) -> Result<String, Error> {
    let ctx = super::WithFacts {
        host: &plan.context,
        ks: Some(facts(host, plan, overlay)),
        pxe: None,
    };
    templates
        .registry
        .render(TEMPLATE, &ctx)
        .map_err(|e| Error::Template(format!("{TEMPLATE} for host {}: {e}", host.name)))
}
