//! The two install paths as the boot lab plays them, from the rendered files
//! unchanged: what anaconda does with a kickstart (the parts that touch the
//! installed system), and the seed and configuration the real cloud-init
//! needs to read a host's user-data as an EL9 instance would.

/// One `%post` section of a kickstart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PostSection {
    /// `--interpreter`, else anaconda's default `/bin/sh`.
    pub interpreter: String,
    /// `--nochroot`: runs in the installer's environment, not the installed system.
    pub nochroot: bool,
    /// `--log`, a path inside the installed system (or the installer's with `--nochroot`).
    pub log: Option<String>,
    pub erroronfail: bool,
    pub body: String,
}

/// What the boot lab takes from a kickstart.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Kickstart {
    /// `%packages` entries, in order (groups keep their `@`).
    pub packages: Vec<String>,
    /// The options of the `firewall` command.
    pub firewall: Vec<String>,
    /// `services --enabled=`.
    pub services_enabled: Vec<String>,
    /// `network --hostname=`.
    pub hostname: Option<String>,
    pub posts: Vec<PostSection>,
}

/// Parses the sections and commands the boot lab plays. Section syntax per
/// pykickstart (https://pykickstart.readthedocs.io/en/latest/kickstart-docs.html:
/// `%packages`, `%post [--nochroot] [--interpreter] [--erroronfail] [--log]`, `%end`).
pub(crate) fn parse_kickstart(text: &str) -> Result<Kickstart, String> {
    let mut ks = Kickstart::default();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.first().copied() {
            Some("%packages") => {
                for (_, l) in lines.by_ref() {
                    let l = l.trim();
                    if l == "%end" {
                        break;
                    }
                    if !l.is_empty() && !l.starts_with('#') {
                        ks.packages.push(l.to_string());
                    }
                }
            }
            Some("%post") => {
                let mut s = PostSection {
                    interpreter: "/bin/sh".into(),
                    nochroot: false,
                    log: None,
                    erroronfail: false,
                    body: String::new(),
                };
                for w in &words[1..] {
                    if let Some(v) = w.strip_prefix("--interpreter=") {
                        s.interpreter = v.to_string();
                    } else if let Some(v) = w.strip_prefix("--log=") {
                        s.log = Some(v.to_string());
                    } else if *w == "--nochroot" {
                        s.nochroot = true;
                    } else if *w == "--erroronfail" {
                        s.erroronfail = true;
                    } else {
                        return Err(format!(
                            "line {}: `%post` option `{w}` is not played by the boot lab",
                            n + 1
                        ));
                    }
                }
                let mut closed = false;
                for (_, l) in lines.by_ref() {
                    if l.trim() == "%end" {
                        closed = true;
                        break;
                    }
                    s.body.push_str(l);
                    s.body.push('\n');
                }
                if !closed {
                    return Err(format!("line {}: `%post` without `%end`", n + 1));
                }
                ks.posts.push(s);
            }
            Some(sec) if sec.starts_with('%') => {
                // %pre, %addon, %anaconda, %onerror: nothing of the installed system.
                for (_, l) in lines.by_ref() {
                    if l.trim() == "%end" {
                        break;
                    }
                }
            }
            Some("firewall") => ks.firewall = words[1..].iter().map(|w| w.to_string()).collect(),
            Some("services") => {
                for w in &words[1..] {
                    if let Some(v) = w.strip_prefix("--enabled=") {
                        ks.services_enabled.extend(v.split(',').map(str::to_string));
                    }
                }
            }
            Some("network") => {
                for w in &words[1..] {
                    if let Some(v) = w.strip_prefix("--hostname=") {
                        ks.hostname = Some(v.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(ks)
}

/// The cloud-init configuration that makes Debian 12's cloud-init act as
/// on an EL9 instance: the `rocky` distro class (its `yum_repos` and `dnf`
/// code paths), the NoCloud data source only, and the module lists of
/// cloud-init's own `config/cloud.cfg.tmpl` for the RHEL family, less the
/// modules that need what the base lacks (sshd, a resizable disk, a
/// subscription service). Network configuration is the lab's (the address
/// on the container's interface), as a cloud's network would give it.
pub(crate) const CLOUD_CFG: &str = "# pgimg boot lab: an EL9 instance from Debian 12's cloud-init.
datasource_list: [NoCloud]
network: {config: disabled}
system_info:
  distro: rocky
  paths:
    cloud_dir: /var/lib/cloud/
    templates_dir: /etc/cloud/templates/
  ssh_svcname: sshd
cloud_init_modules:
  - migrator
  - seed_random
  - bootcmd
  - write-files
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - users-groups
cloud_config_modules:
  - locale
  - yum-add-repo
  - timezone
  - runcmd
cloud_final_modules:
  - package-update-upgrade-install
  - write-files-deferred
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - final-message
";

/// EL9's cloud-init units, which the install path meets where they differ
/// from Debian's: on the RHEL variant the network stage has the default
/// dependencies (after sockets, so D-Bus, which the rhel distro class needs
/// for `hostnamectl`) and the final stage is not ordered after
/// multi-user.target. Rendered from cloud-init 23.4 (the version Rocky/Alma
/// 9 ship), `systemd/*.service.tmpl` with `variant == "rhel"`; installed in
/// /etc/systemd/system over the base's own.
pub(crate) const CLOUD_INIT_EL9_UNITS: [(&str, &str); 4] = [
    (
        "cloud-init-local.service",
        "# pgimg boot lab: EL9's unit (cloud-init 23.4, variant rhel).
[Unit]
Description=Initial cloud-init job (pre-networking)
DefaultDependencies=no
Wants=network-pre.target
After=hv_kvp_daemon.service
After=systemd-remount-fs.service
Requires=dbus.socket
After=dbus.socket
Before=NetworkManager.service
Before=network.service
Before=network-pre.target
Before=shutdown.target
Before=firewalld.target
Conflicts=shutdown.target
RequiresMountsFor=/var/lib/cloud
ConditionPathExists=!/etc/cloud/cloud-init.disabled
ConditionKernelCommandLine=!cloud-init=disabled
ConditionEnvironment=!KERNEL_CMDLINE=cloud-init=disabled

[Service]
Type=oneshot
ExecStartPre=/bin/mkdir -p /run/cloud-init
ExecStartPre=/sbin/restorecon /run/cloud-init
ExecStartPre=/usr/bin/touch /run/cloud-init/enabled
ExecStart=/usr/bin/cloud-init init --local
RemainAfterExit=yes
TimeoutSec=0
StandardOutput=journal+console

[Install]
WantedBy=cloud-init.target
",
    ),
    (
        "cloud-init.service",
        "# pgimg boot lab: EL9's unit (cloud-init 23.4, variant rhel).
[Unit]
Description=Initial cloud-init job (metadata service crawler)
Wants=cloud-init-local.service
Wants=sshd-keygen.service
Wants=sshd.service
After=cloud-init-local.service
After=systemd-networkd-wait-online.service
After=network.service
After=NetworkManager.service
After=NetworkManager-wait-online.service
Before=network-online.target
Before=sshd-keygen.service
Before=sshd.service
ConditionPathExists=!/etc/cloud/cloud-init.disabled
ConditionKernelCommandLine=!cloud-init=disabled
ConditionEnvironment=!KERNEL_CMDLINE=cloud-init=disabled

[Service]
Type=oneshot
ExecStart=/usr/bin/cloud-init init
RemainAfterExit=yes
TimeoutSec=0
StandardOutput=journal+console

[Install]
WantedBy=cloud-init.target
",
    ),
    (
        "cloud-config.service",
        "# pgimg boot lab: EL9's unit (cloud-init 23.4).
[Unit]
Description=Apply the settings specified in cloud-config
After=network-online.target cloud-config.target
After=snapd.seeded.service
Before=systemd-user-sessions.service
Wants=network-online.target cloud-config.target
ConditionPathExists=!/etc/cloud/cloud-init.disabled
ConditionKernelCommandLine=!cloud-init=disabled
ConditionEnvironment=!KERNEL_CMDLINE=cloud-init=disabled

[Service]
Type=oneshot
ExecStart=/usr/bin/cloud-init modules --mode=config
RemainAfterExit=yes
TimeoutSec=0
StandardOutput=journal+console

[Install]
WantedBy=cloud-init.target
",
    ),
    (
        "cloud-final.service",
        "# pgimg boot lab: EL9's unit (cloud-init 23.4, variant rhel).
[Unit]
Description=Execute cloud user/final scripts
After=network-online.target cloud-config.service rc-local.service
Wants=network-online.target cloud-config.service
ConditionPathExists=!/etc/cloud/cloud-init.disabled
ConditionKernelCommandLine=!cloud-init=disabled
ConditionEnvironment=!KERNEL_CMDLINE=cloud-init=disabled

[Service]
Type=oneshot
ExecStart=/usr/bin/cloud-init modules --mode=final
RemainAfterExit=yes
TimeoutSec=0
KillMode=process
ExecStartPost=/bin/sh -c 'u=NetworkManager.service; \\
 out=$(systemctl show --property=SubState $u) || exit; \\
 [ \"$out\" = \"SubState=running\" ] || exit 0; \\
 systemctl reload-or-try-restart $u'
StandardOutput=journal+console

[Install]
WantedBy=cloud-init.target
",
    ),
];

/// NoCloud's `meta-data` for a host.
pub(crate) fn meta_data(host: &str) -> String {
    format!("instance-id: pgimg-boot-{host}\nlocal-hostname: {host}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kickstart_gives_its_packages_firewall_and_post_sections() {
        let ks = parse_kickstart(
            "text\nnetwork --device=e --hostname=pg1.example.com\nfirewall --enabled --port=5432:tcp\n%packages\n@core\n# c\netcd\n%end\n%pre\nrm -rf /\n%end\n%post --erroronfail --log=/root/p.log\nset -e\necho hi\n%end\n%post --interpreter=/usr/bin/python3\nprint(1)\n%end\n",
        )
        .expect("parses");
        assert_eq!(ks.packages, vec!["@core", "etcd"]);
        assert_eq!(ks.firewall, vec!["--enabled", "--port=5432:tcp"]);
        assert_eq!(ks.hostname.as_deref(), Some("pg1.example.com"));
        assert_eq!(ks.posts.len(), 2);
        assert!(ks.posts[0].erroronfail);
        assert_eq!(ks.posts[0].log.as_deref(), Some("/root/p.log"));
        assert_eq!(ks.posts[0].body, "set -e\necho hi\n");
        assert_eq!(ks.posts[1].interpreter, "/usr/bin/python3");
        assert!(parse_kickstart("%post\necho\n").is_err());
        assert!(parse_kickstart("%post --bogus\n%end\n").is_err());
    }
}
