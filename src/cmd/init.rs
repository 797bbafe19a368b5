//! `pgimg init`: a commented starter spec that validates and builds as it is.

use std::fmt::Write as _;

/// What the starter spec describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Starter {
    /// Add a DR site following the primary one.
    pub dr: bool,
    /// PostgreSQL hosts per site (1 to 9).
    pub hosts: u8,
    /// Hosts install over PXE (MAC and disks) instead of starting from cloud-init user-data.
    pub bare_metal: bool,
}

impl Default for Starter {
    fn default() -> Self {
        Starter {
            dr: false,
            hosts: 3,
            bare_metal: false,
        }
    }
}

struct SiteText {
    name: &'static str,
    host_prefix: &'static str,
    /// Third octet of the site's 10.0.x.0/24 network.
    net: u8,
}

/// The spec text. Pure: the same options give the same bytes.
pub fn render(o: Starter, file_name: &str) -> String {
    let mut s = String::new();
    let commands = [
        (
            format!("pgimg validate {file_name}"),
            "check it (every mistake at once, with its line)",
        ),
        (format!("pgimg show {file_name}"), "the hosts as a table"),
        (
            format!("pgimg resolve {file_name} db1"),
            "one host's settings and the layer that set each",
        ),
        (
            format!("pgimg graph {file_name} > fleet.svg"),
            "a picture of the fleet",
        ),
        (
            format!("pgimg build {file_name} -o out"),
            "every artifact, into out/",
        ),
    ];
    let width = commands.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let commands: String = commands
        .iter()
        .map(|(c, what)| format!("#   {c:<width$}  {what}\n"))
        .collect();
    let flags = format!(
        "--hosts {}{}{}",
        o.hosts,
        if o.dr { " --dr" } else { "" },
        if o.bare_metal {
            " --bare-metal"
        } else {
            " --cloud"
        }
    );
    let _ = write!(
        s,
        "\
# A pgimg spec, written by `pgimg init {flags}`.
#
# One PostgreSQL high-availability cluster: PostgreSQL + Patroni hosts, an
# etcd cluster Patroni keeps its leader lock in, and an HAProxy that sends
# writes to the leader and reads to the replicas{dr_intro}.
#
{commands}#
# Settings are layered: `defaults` (every cluster) -> a cluster's `settings`
# -> a site's `settings` -> a host's `settings`; the nearest layer wins.
# Anything left out takes the reference guide's value.
version: 1

defaults:
  os:
    timezone: UTC
    # Public keys that may log in as the admin user (`admin`), for example:
    # ssh_keys: [\"ssh-ed25519 AAAA... you@example.com\"]
  network:
    prefix: 24
  postgresql:
    major: 17
",
        dr_intro = if o.dr {
            ";\n# a DR site runs a standby cluster that streams from the primary site and\n# can be promoted when the primary site is lost"
        } else {
            ""
        },
    );
    if o.bare_metal {
        s.push_str(
            "  repos:
    # Bare-metal hosts boot the installer over PXE and fetch their kickstart
    # from here: serve the build output (out/) at this URL.
    artifacts: http://boot.example.com/pgimg
    # The install tree the installer boots from.
    installer: http://boot.example.com/rocky/9/BaseOS/x86_64/os/
",
        );
    }
    s.push_str(
        "
# Secrets are references, never values: `{ env: NAME }` is read from the
# environment at build time, `{ file: PATH }` from a file (relative to this
# spec). Values that are absent are not an error: the build lists them, and
# they must reach the hosts (out/secrets/<host>/) before Patroni starts.
secrets:
  superuser_password: { env: PGIMG_SUPERUSER_PASSWORD }
  replication_password: { env: PGIMG_REPLICATION_PASSWORD }
  rewind_password: { env: PGIMG_REWIND_PASSWORD }
  # Basic authentication of Patroni's unsafe REST endpoints (user `patroni`).
  restapi_password: { env: PGIMG_RESTAPI_PASSWORD }
  # TLS is on by default (`pgimg secrets init` makes the CA and host certificates
  # under tls/<cluster>/); etcd's users and HAProxy's stats page log in with these.
  etcd_root_password: { env: PGIMG_ETCD_ROOT_PASSWORD }
  etcd_password: { env: PGIMG_ETCD_PASSWORD }
  haproxy_stats_password: { env: PGIMG_HAPROXY_STATS_PASSWORD }

clusters:
  - name: main
    settings:
      pgbackrest:
        stanza: main
        # Backups go to an NFS export every PostgreSQL host of the site
        # mounts at the repository's path (pgimg renders the mount unit).
        # For S3 instead:
        #   - { type: s3, bucket: my-backups, region: eu-central-1 }
        repos:
          - type: posix
            path: /srv/pgbackrest
            mount: { server: nfs.example.com, export: /exports/pgbackrest }
    sites:
",
    );
    let primary = SiteText {
        name: "primary",
        host_prefix: "",
        net: 1,
    };
    site(&mut s, &o, &primary, 0);
    if o.dr {
        let dr = SiteText {
            name: "dr",
            host_prefix: "dr-",
            net: 2,
        };
        site(&mut s, &o, &dr, 1);
    }
    s
}

fn site(s: &mut String, o: &Starter, site: &SiteText, index: u8) {
    let _ = writeln!(s, "      - name: {}", site.name);
    if index > 0 {
        s.push_str(
            "        # A standby cluster: its standby leader streams from the primary site
        # through a replication slot; `scope` names its own Patroni cluster.
        standby_of: primary
        scope: main_dr
",
        );
    }
    let _ = write!(
        s,
        "        settings:
          network: {{ gateway: 10.0.{net}.1, dns: [10.0.{net}.2] }}
",
        net = site.net
    );
    if index > 0 {
        s.push_str("          pgbackrest: { stanza: main_dr }\n");
    }
    s.push_str("        hosts:\n");
    if index == 0 {
        if o.bare_metal {
            s.push_str(
                "          # Each host installs over PXE: `boot.mac` gets it a network boot entry
          # (out/pxe/) that starts the installer with its kickstart.
",
            );
        } else {
            s.push_str(
                "          # Each host starts on a cloud from out/hosts/<host>/user-data; its
          # private address must be the one given here.
",
            );
        }
    }
    // An etcd cluster needs an odd number of members: with an even number of
    // PostgreSQL hosts the HAProxy host is the odd one out.
    let lb_etcd = o.hosts.is_multiple_of(2);
    if o.hosts == 1 && index == 0 {
        s.push_str("          # One etcd member has no fault tolerance (pgimg warns); three do.\n");
    }
    for i in 1..=o.hosts {
        let _ = writeln!(
            s,
            "          - {{ name: {p}db{i}, address: 10.0.{net}.{a}, roles: [pg, etcd]{boot} }}",
            p = site.host_prefix,
            net = site.net,
            a = 10 + i,
            boot = boot(o, site, i)
        );
    }
    if lb_etcd && index == 0 {
        s.push_str("          # Also an etcd member, so that the etcd cluster has an odd size.\n");
    }
    let _ = writeln!(
        s,
        "          - {{ name: {p}lb1, address: 10.0.{net}.10, roles: [haproxy{etcd}]{boot} }}",
        p = site.host_prefix,
        net = site.net,
        etcd = if lb_etcd { ", etcd" } else { "" },
        boot = boot(o, site, 0)
    );
}

fn boot(o: &Starter, site: &SiteText, host: u8) -> String {
    if !o.bare_metal {
        return String::new();
    }
    // Locally administered addresses of the QEMU/KVM range: replace them with the hosts' own.
    let mac = format!("52:54:00:00:{:02x}:{:02x}", site.net, 10 + host);
    if host == 0 {
        format!(", boot: {{ mac: \"{mac}\" }}")
    } else {
        format!(", boot: {{ mac: \"{mac}\", disk: {{ os_disk: sda, data_disk: sdb }} }}")
    }
}
