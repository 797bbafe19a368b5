//! `hosts/<host>/user-data`: a `#cloud-config` document serialized from
//! typed structs through `render::yaml` (every string single-quoted, so
//! modes stay strings and no value changes type), never templated.
//!
//! The overlay travels as the tarball itself (`write_files`, base64): one
//! entry keeps the owners, modes and directories of the archive, which
//! per-file `write_files` cannot express (directories, and owners such as
//! `postgres` that exist only once the packages are in, while `write_files`
//! runs before packages are installed). `runcmd` runs after the packages and
//! unpacks it, so every owner exists by then.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{FirstBoot, Net, OVERLAY_PATH, USER_DATA_LIMIT};
use crate::model::Host;
use crate::plan::HostPlan;
use crate::render::manifest::sha256;
use crate::render::overlay::gzip;
use crate::render::yaml::{quote, to_yaml};
use crate::spec::v1::SelinuxMode;

#[derive(Serialize)]
struct CloudConfig {
    hostname: String,
    fqdn: String,
    prefer_fqdn_over_hostname: bool,
    /// The overlay writes `/etc/hosts`; cloud-init must leave it alone.
    manage_etc_hosts: bool,
    timezone: String,
    locale: String,
    disable_root: bool,
    ssh_pwauth: bool,
    users: Vec<User>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bootcmd: Vec<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    yum_repos: Map<String, Value>,
    packages: Vec<String>,
    write_files: Vec<WriteFile>,
    runcmd: Vec<String>,
}

#[derive(Serialize)]
struct User {
    name: String,
    groups: Vec<String>,
    sudo: String,
    shell: String,
    lock_passwd: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ssh_authorized_keys: Vec<String>,
}

#[derive(Serialize)]
struct YumRepo {
    name: String,
    baseurl: String,
    enabled: bool,
    gpgcheck: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo_gpgcheck: Option<bool>,
    gpgkey: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    includepkgs: Option<String>,
}

#[derive(Serialize)]
struct WriteFile {
    path: String,
    encoding: String,
    content: String,
    owner: String,
    permissions: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    defer: Option<bool>,
}

/// What `dnf module disable postgresql` leaves behind. Written as a file it
/// takes effect before the packages are installed, without a network round
/// trip and whichever repositories the image has.
pub(crate) const MODULE_DISABLED: &str =
    "[postgresql]\nname=postgresql\nstream=\nprofiles=\nstate=disabled\n";

/// A host's user-data as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UserData {
    Plain(Vec<u8>),
    /// Over the limit as text, within it gzip-compressed; `raw` is the text's size.
    Gzip {
        raw: usize,
        bytes: Vec<u8>,
    },
}

/// The `#cloud-config` text.
pub(crate) fn text(host: &Host, plan: &HostPlan, overlay: &[u8]) -> String {
    text_with(host, plan, overlay, &[])
}

/// The `#cloud-config` text, with `secrets` embedded as `write_files` when
/// there are any (`embed`): each file at its path with its owner, group and
/// mode, base64 (a single-quoted scalar would fold a PEM file's lines).
/// Every one is deferred to cloud-init's final stage (cloud-init's schema,
/// `write_files.defer`: "after users were created, and packages were
/// installed"; cc_write_files runs in the init stage otherwise), so that
/// `postgres` and `etcd` exist and the packages have created the
/// directories they own with their modes; `write_files_deferred` runs
/// before `runcmd` (scripts_user), so every secret is in place before
/// runcmd starts a unit, and `pgimg-secrets.service`, whose condition is
/// the absence of the last file it would install, does nothing.
pub(crate) fn text_with(
    host: &Host,
    plan: &HostPlan,
    overlay: &[u8],
    secrets: &[super::embed::Secret],
) -> String {
    let c = &host.config;
    let net = Net::of(host);
    let first = FirstBoot::of(host, plan);
    let mut yum_repos = Map::new();
    for r in super::host_repos(host) {
        let repo = YumRepo {
            name: r.name,
            baseurl: r.baseurl,
            enabled: true,
            gpgcheck: true,
            repo_gpgcheck: r.repo_gpgcheck.then_some(true),
            gpgkey: r.gpgkey.unwrap_or_default(),
            includepkgs: (!r.includepkgs.is_empty()).then(|| r.includepkgs.join(" ")),
        };
        yum_repos.insert(r.id, serde_json::to_value(repo).unwrap_or(Value::Null));
    }
    let mut bootcmd = Vec::new();
    if super::custom_distro_mirrors(host) {
        bootcmd.push(format!(
            "cloud-init-per once pgimg-distro-repos {}",
            super::DISABLE_DISTRO_REPOS
        ));
    }
    let selinux_on = c.os.selinux != SelinuxMode::Disabled;
    let mut run = vec![
        "set -eu".to_string(),
        format!(
            "echo {} | sha256sum -c --quiet -",
            quote(&format!("{}  {OVERLAY_PATH}", sha256(overlay)))
        ),
        format!("tar --no-overwrite-dir -xpzf {OVERLAY_PATH} -C /"),
    ];
    run.extend(first.dir_commands.iter().cloned());
    if selinux_on {
        run.push(format!(
            "tar -tzf {OVERLAY_PATH} | sed 's,^,/,' | xargs -r restorecon"
        ));
    }
    run.push("sysctl --system >/dev/null".into());
    match c.os.selinux {
        SelinuxMode::Enforcing => {
            run.push("sed -i 's/^SELINUX=.*/SELINUX=enforcing/' /etc/selinux/config".into());
            run.push("if selinuxenabled; then setenforce 1; fi".into());
        }
        SelinuxMode::Permissive => {
            run.push("sed -i 's/^SELINUX=.*/SELINUX=permissive/' /etc/selinux/config".into());
            run.push("if selinuxenabled; then setenforce 0; fi".into());
        }
        SelinuxMode::Disabled => {
            // EL9 ignores SELINUX=disabled in the config file; the kernel argument takes effect at the next boot.
            run.push("grubby --update-kernel ALL --args selinux=0".into());
            run.push("if selinuxenabled; then setenforce 0; fi".into());
        }
    }
    run.extend(super::firewall::commands(host, plan));
    if first.haproxy_boolean {
        run.push("setsebool -P haproxy_connect_any 1".into());
    }
    if first.pip {
        run.extend(FirstBoot::venv_commands(host));
    }
    if !first.units.is_empty() {
        let units = first.units.join(" ");
        run.push("systemctl daemon-reload".into());
        run.push(format!("systemctl enable {units}"));
        // Without blocking: etcd waits for its peers, and Patroni for its secrets.
        run.push(format!("systemctl start --no-block {units}"));
    }
    let mut doc = CloudConfig {
        hostname: host.name.clone(),
        fqdn: net.fqdn.clone(),
        prefer_fqdn_over_hostname: true,
        manage_etc_hosts: false,
        timezone: c.os.timezone.clone(),
        locale: c.os.lang.clone(),
        disable_root: true,
        ssh_pwauth: false,
        users: vec![User {
            name: c.os.admin_user.clone(),
            groups: vec!["wheel".into()],
            // The account has no password, only SSH keys.
            sudo: "ALL=(ALL) NOPASSWD:ALL".into(),
            shell: "/bin/bash".into(),
            lock_passwd: true,
            ssh_authorized_keys: c.os.ssh_keys.clone(),
        }],
        bootcmd,
        yum_repos,
        packages: plan
            .packages
            .iter()
            .cloned()
            .chain(["tar".to_string()])
            .collect(),
        write_files: vec![
            WriteFile {
                path: "/etc/dnf/modules.d/postgresql.module".into(),
                // A single-quoted YAML scalar folds line breaks: multi-line content goes as base64.
                encoding: "b64".into(),
                content: super::base64(MODULE_DISABLED.as_bytes(), 0),
                owner: "root:root".into(),
                permissions: "0644".into(),
                defer: None,
            },
            WriteFile {
                path: OVERLAY_PATH.into(),
                // The tarball is already gzip-compressed: plain b64 keeps the
                // file on the host byte-identical to overlay.tar.gz.
                encoding: "b64".into(),
                content: super::base64(overlay, 0),
                owner: "root:root".into(),
                permissions: "0600".into(),
                defer: None,
            },
        ],
        runcmd: run,
    };
    doc.write_files.extend(secrets.iter().map(|s| WriteFile {
        path: s.file.path.into(),
        encoding: "b64".into(),
        content: super::base64(&s.bytes, 0),
        owner: format!("{}:{}", s.file.owner, s.file.group),
        permissions: format!("{:04o}", s.file.mode),
        defer: Some(true),
    }));
    let value = serde_json::to_value(&doc).unwrap_or(Value::Null);
    let mut out = format!(
        "#cloud-config\n# user-data for {} (cluster {}, site {}), generated by pgimg {}; do not edit.\n# The instance's private address must be {}: the cloud's network configures it.\n{}\n",
        net.fqdn,
        plan.cluster,
        plan.site,
        env!("CARGO_PKG_VERSION"),
        host.address,
        if secrets.is_empty() {
            "# No secret is in this file: deliver the host's secrets separately before Patroni starts.".to_string()
        } else {
            format!(
                "# This file holds the secrets of {} (pgimg build --embed-secrets): whoever can read it can read them.",
                host.name
            )
        },
    );
    out.push_str(&to_yaml(&value));
    out
}

/// The user-data within EC2's limit: as text, else gzip-compressed, else an
/// error that says which host, how big, and what to do.
pub(crate) fn render(host: &Host, plan: &HostPlan, overlay: &[u8]) -> Result<UserData, String> {
    let text = text(host, plan, overlay);
    fit(&host.name, text.into_bytes())
}

pub(crate) fn fit(host: &str, text: Vec<u8>) -> Result<UserData, String> {
    if text.len() <= USER_DATA_LIMIT {
        return Ok(UserData::Plain(text));
    }
    let gz = gzip(&text);
    if gz.len() <= USER_DATA_LIMIT {
        return Ok(UserData::Gzip {
            raw: text.len(),
            bytes: gz,
        });
    }
    Err(format!(
        "host {host}: user-data is {} bytes ({} gzip-compressed), over EC2's limit of {USER_DATA_LIMIT} bytes; \
         make the host's overlay smaller (fewer or smaller role files), list fewer SSH keys or extra packages, \
         or install this host from its kickstart.ks instead of cloud-init",
        text.len(),
        gz.len()
    ))
}
