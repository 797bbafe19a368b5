//! The host's firewall, as the shell commands both install paths run once
//! the packages are in (kickstart `%post`, cloud-init `runcmd`): one
//! function, so the two paths open exactly the same.
//!
//! SSH stays open to every source (the administrator). Every other port of
//! the host's roles is opened only to the sources its `role.yaml` entry
//! lists in `from:` (`HostPlan::ports`), one firewalld rich rule per source
//! in the default zone:
//!
//! ```text
//! rule family="ipv4" source address="10.0.0.12/32" port port="5432" protocol="tcp" accept
//! rule family="ipv4" source address="10.0.0.31/32" protocol value="vrrp" accept
//! ```
//!
//! Syntax: firewalld.richlanguage(5), "General rule structure" (`rule
//! [family] [source] port|protocol … accept`, `port port="…" protocol="…"`,
//! `protocol value="…"`, a source being an address or a network;
//! https://man.archlinux.org/man/firewalld.richlanguage.5). Rich rules
//! rather than a dedicated zone with sources: a zone's sources open all of
//! its ports to all of them, while here each port has its own sources. The
//! kickstart's `firewall` command has ports, services and trusted
//! interfaces but no source (pykickstart's `commands/firewall.py`,
//! https://pykickstart.readthedocs.io/en/latest/_modules/pykickstart/commands/firewall.html).
//! `%post` runs chrooted in the installed system, where most systemctl
//! commands do nothing (RHEL "%post script",
//! https://docs.redhat.com/en/documentation/red_hat_enterprise_linux/10/install-post_script_section_options),
//! so firewalld is not running there, nor yet when cloud-init's `runcmd`
//! enables it: both use `firewall-offline-cmd`, "to be used only if the
//! firewalld service is not running … in the install environment"
//! (firewall-offline-cmd(1)), which edits the permanent configuration the
//! daemon loads at start. firewall-offline-cmd
//! refuses to mix its lokkit options (`--remove-service`) with the others
//! (`--add-service`, `--add-rich-rule`): "Can't use lokkit options with other
//! options" (firewalld 1.3), so they are separate commands. The conformance
//! suite runs every host's commands with the real firewall-offline-cmd.

use crate::model::Host;
use crate::plan::{HostPlan, PlannedPort};

/// The commands, in order; empty when the spec turns the firewall off.
pub(crate) fn commands(host: &Host, plan: &HostPlan) -> Vec<String> {
    if !host.config.os.firewall {
        return Vec::new();
    }
    let mut out = vec![
        "firewall-offline-cmd --add-service=ssh".to_string(),
        "firewall-offline-cmd --remove-service=cockpit --remove-service=dhcpv6-client".to_string(),
    ];
    for p in &plan.ports {
        if p.sources.is_empty() {
            continue;
        }
        let mut cmd = "firewall-offline-cmd".to_string();
        for s in &p.sources {
            cmd.push_str(&format!(" --add-rich-rule='{}'", rich_rule(p, s)));
        }
        out.push(cmd);
    }
    out
}

/// One rich rule: `source` may connect to the port (or protocol) `p`.
pub(crate) fn rich_rule(p: &PlannedPort, source: &str) -> String {
    let family = if source.contains(':') { "ipv6" } else { "ipv4" };
    let what = match p.port {
        Some(port) => format!("port port=\"{port}\" protocol=\"{}\"", p.proto),
        None => format!("protocol value=\"{}\"", p.proto),
    };
    format!("rule family=\"{family}\" source address=\"{source}\" {what} accept")
}
