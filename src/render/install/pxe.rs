//! `pxe/grub.cfg-01-<mac>` (GRUB2, UEFI) and `pxe/pxelinux.cfg/01-<mac>`
//! (PXELINUX, BIOS) for every host with a MAC: boot the installer with the
//! host's kickstart and its static network on the kernel line, so no DHCP
//! lease is needed once the boot loader is loaded.
//!
//! The installer's kernel and initrd are expected next to the entries, under
//! `<distro>-9/` of the TFTP root (copied from the install tree's
//! `images/pxeboot/`).

use serde_json::json;

use super::Net;
use crate::Error;
use crate::model::Host;
use crate::plan::HostPlan;
use crate::render::templates::Templates;
use crate::spec::v1::Distro;

pub(crate) const GRUB_TEMPLATE: &str = "kickstart/grub.cfg.hbs";
pub(crate) const PXELINUX_TEMPLATE: &str = "kickstart/pxelinux.cfg.hbs";

/// The installer's kernel arguments for a host.
pub(crate) fn kernel_args(host: &Host) -> Result<String, Error> {
    let net = Net::of(host);
    let artifacts = host.config.repos.artifacts.as_deref().ok_or_else(|| {
        // The check stage reports this with its position; reaching here is a bug.
        Error::Template(format!(
            "host {}: `boot.mac` without `repos.artifacts`",
            host.name
        ))
    })?;
    let repos = &host.config.repos;
    let repo = repos
        .installer
        .clone()
        .or_else(|| repos.baseos.clone())
        .unwrap_or_else(|| crate::facts::repos::baseos(host).baseurl);
    let bracket = |a: &str| {
        if net.ipv6 {
            format!("[{a}]")
        } else {
            a.to_string()
        }
    };
    let gateway = net.gateway.as_deref().map(bracket).unwrap_or_default();
    // Named interface if the spec has one; else BOOTIF pins the address to the MAC.
    let iface = net.interface.clone().unwrap_or_default();
    let mut args = vec![
        format!("inst.ks={artifacts}/hosts/{}/kickstart.ks", host.name),
        format!("inst.repo={repo}"),
        "inst.text".to_string(),
        format!(
            "ip={}::{gateway}:{}:{}:{iface}:none",
            bracket(&net.address),
            net.netmask,
            net.fqdn
        ),
    ];
    for d in &net.dns {
        args.push(format!("nameserver={d}"));
    }
    if net.interface.is_none()
        && let Some(mac) = &net.mac
    {
        args.push(format!("BOOTIF=01-{}", mac.replace(':', "-")));
    }
    Ok(args.join(" "))
}

fn context<'a>(host: &Host, plan: &'a HostPlan) -> Result<super::WithFacts<'a>, Error> {
    let d = host.config.os.distro;
    Ok(super::WithFacts {
        host: &plan.context,
        ks: None,
        pxe: Some(json!({
            "title": format!("Install {} 9 on {}", super::distro_name(d), super::fqdn(host)),
            "dir": match d { Distro::Rocky => "rocky-9", Distro::Alma => "alma-9" },
            "args": kernel_args(host)?,
            "install": host.boot.install,
        })),
    })
}

/// The two entries of a host with a MAC: (path in the output, text).
pub(crate) fn render(
    templates: &Templates,
    host: &Host,
    plan: &HostPlan,
) -> Result<Vec<(String, String)>, Error> {
    let [grub, pxelinux] = match paths(host).as_slice() {
        [g, p] => [g.clone(), p.clone()],
        _ => return Ok(Vec::new()),
    };
    let ctx = context(host, plan)?;
    let render = |t: &str| {
        templates
            .registry
            .render(t, &ctx)
            .map_err(|e| Error::Template(format!("{t} for host {}: {e}", host.name)))
    };
    Ok(vec![
        (grub, render(GRUB_TEMPLATE)?),
        (pxelinux, render(PXELINUX_TEMPLATE)?),
    ])
}

/// Where a host's two entries go in the output (none without a MAC): the
/// names the firmware asks the TFTP server for.
pub(crate) fn paths(host: &Host) -> Vec<String> {
    let Some(mac) = &host.boot.mac else {
        return Vec::new();
    };
    let name = format!("01-{}", mac.to_ascii_lowercase().replace(':', "-"));
    vec![
        format!("pxe/grub.cfg-{name}"),
        format!("pxe/pxelinux.cfg/{name}"),
    ]
}
