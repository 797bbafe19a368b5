//! The package repositories, as data (`data/repos.yaml`): one list rendered
//! the same way into the kickstart's `url`/`repo` lines, the installed
//! host's `.repo` file and cloud-init's `yum_repos`. Every URL can be
//! replaced by the spec (`repos.<override>`), for mirrors.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::model::Host;
use crate::spec::v1::{Distro, Role};

pub(crate) const REPOS_YAML: &str = include_str!("../../data/repos.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepoData {
    pub distribution: Vec<RepoDef>,
    pub pgdg: Vec<RepoDef>,
    pub python: Vec<RepoDef>,
    /// The PGDG base URL when the spec names none (`{pgdg}`).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "a field of data/repos.yaml, which the tests read")
    )]
    pub pgdg_default: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepoDef {
    pub id: String,
    pub name: String,
    /// The `repos.<field>` of the spec that replaces the URL.
    #[serde(rename = "override")]
    pub override_field: Option<String>,
    pub url: PerDistro,
    pub gpgkey: Option<PerDistro>,
    #[serde(default)]
    pub repo_gpgcheck: bool,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub includepkgs: Vec<String>,
    #[expect(
        dead_code,
        reason = "documentation in data/repos.yaml, held by its schema"
    )]
    pub serves: String,
    #[expect(
        dead_code,
        reason = "documentation in data/repos.yaml, held by its schema"
    )]
    pub source: String,
}

/// A template for both distributions, or one per distribution.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PerDistro {
    pub all: Option<String>,
    pub rocky: Option<String>,
    pub alma: Option<String>,
}

impl PerDistro {
    pub(crate) fn template(&self, d: Distro) -> &str {
        let own = match d {
            Distro::Rocky => &self.rocky,
            Distro::Alma => &self.alma,
        };
        own.as_deref()
            .or(self.all.as_deref())
            .unwrap_or_else(|| panic!("data/repos.yaml: a template lacks `all` and `{d:?}`"))
    }

    /// Every template it holds.
    #[cfg(test)]
    pub(crate) fn templates(&self) -> impl Iterator<Item = &str> {
        [&self.all, &self.rocky, &self.alma]
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

pub(crate) fn data() -> &'static RepoData {
    static DATA: OnceLock<RepoData> = OnceLock::new();
    DATA.get_or_init(|| {
        serde_yaml::from_str(REPOS_YAML)
            .unwrap_or_else(|e| panic!("data/repos.yaml is invalid (a build-time fact): {e}"))
    })
}

/// A repository as every format declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repo {
    pub id: String,
    pub name: String,
    pub baseurl: String,
    pub gpgkey: Option<String>,
    pub repo_gpgcheck: bool,
    pub includepkgs: Vec<String>,
}

pub(crate) fn distro_name(d: Distro) -> &'static str {
    match d {
        Distro::Rocky => "Rocky Linux",
        Distro::Alma => "AlmaLinux",
    }
}

/// Fills `{pgdg}`, `{major}` and `{distro}` in a template.
pub(crate) fn fill(template: &str, pgdg: &str, major: u32, d: Distro) -> String {
    template
        .replace("{pgdg}", pgdg.trim_end_matches('/'))
        .replace("{major}", &major.to_string())
        .replace("{distro}", distro_name(d))
}

/// The spec's value of `repos.<field>`, if it sets one.
fn spec_override<'a>(host: &'a Host, field: Option<&str>) -> Option<&'a str> {
    let r = &host.config.repos;
    match field? {
        "baseos" => r.baseos.as_deref(),
        "appstream" => r.appstream.as_deref(),
        "pgdg_extras" => r.pgdg_extras.as_deref(),
        "pypi" => r.pypi.as_deref(),
        other => panic!("data/repos.yaml: unknown override `repos.{other}`"),
    }
}

fn resolve(host: &Host, def: &RepoDef) -> Repo {
    let c = &host.config;
    let d = c.os.distro;
    let major = c.postgresql.major;
    let pgdg = c.repos.pgdg.as_str();
    let baseurl = spec_override(host, def.override_field.as_deref())
        .map(str::to_string)
        .unwrap_or_else(|| fill(def.url.template(d), pgdg, major, d));
    Repo {
        id: fill(&def.id, pgdg, major, d),
        name: fill(&def.name, pgdg, major, d),
        baseurl,
        gpgkey: def
            .gpgkey
            .as_ref()
            .map(|k| fill(k.template(d), pgdg, major, d)),
        repo_gpgcheck: def.repo_gpgcheck,
        includepkgs: def.includepkgs.clone(),
    }
}

fn applies(host: &Host, def: &RepoDef) -> bool {
    def.roles.is_empty() || def.roles.iter().any(|r| host.has(*r))
}

fn distribution(host: &Host, id: &str) -> Repo {
    let def = data()
        .distribution
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("data/repos.yaml: no distribution repository `{id}`"));
    resolve(host, def)
}

pub(crate) fn baseos(host: &Host) -> Repo {
    distribution(host, "baseos")
}

pub(crate) fn appstream(host: &Host) -> Repo {
    distribution(host, "appstream")
}

/// The kickstart's installation source: the spec's BaseOS mirror, else its
/// installer tree, else the distribution's BaseOS.
pub(crate) fn installer_url(host: &Host) -> String {
    let r = &host.config.repos;
    r.baseos
        .clone()
        .or_else(|| r.installer.clone())
        .unwrap_or_else(|| baseos(host).baseurl)
}

/// True when the spec names its own BaseOS/AppStream mirrors, which then
/// replace the distribution's repositories on the installed host.
pub(crate) fn custom_distro_mirrors(host: &Host) -> bool {
    host.config.repos.baseos.is_some() || host.config.repos.appstream.is_some()
}

/// The PGDG repositories the host's roles need.
pub(crate) fn pgdg(host: &Host) -> Vec<Repo> {
    data()
        .pgdg
        .iter()
        .filter(|d| applies(host, d))
        .map(|d| resolve(host, d))
        .collect()
}

/// The repositories the installed host keeps: the spec's BaseOS/AppStream
/// mirrors when it names them (the image's own otherwise), then PGDG's.
pub(crate) fn host_repos(host: &Host) -> Vec<Repo> {
    let mut out = Vec::new();
    if custom_distro_mirrors(host) {
        for mut r in [baseos(host), appstream(host)] {
            r.id = format!("pgimg-{}", r.id);
            r.name.push_str(" (mirror)");
            out.push(r);
        }
    }
    out.extend(pgdg(host));
    out
}

/// The Python package index `pip install` uses.
pub(crate) fn python_index(host: &Host) -> String {
    let def = data()
        .python
        .iter()
        .find(|r| r.id == "pypi")
        .unwrap_or_else(|| panic!("data/repos.yaml: no python index `pypi`"));
    resolve(host, def).baseurl
}

/// Every URL and key the data can produce for PostgreSQL majors 14 to 18 and
/// both distributions, with the default PGDG base: what a build without
/// repository overrides may render.
#[cfg(test)]
pub(crate) fn all_default_urls() -> Vec<String> {
    let d = data();
    let mut out = Vec::new();
    for def in d.distribution.iter().chain(&d.pgdg).chain(&d.python) {
        let templates = def
            .url
            .templates()
            .chain(def.gpgkey.iter().flat_map(|k| k.templates()));
        for t in templates {
            for major in 14..=18 {
                for distro in [Distro::Rocky, Distro::Alma] {
                    out.push(fill(t, &d.pgdg_default, major, distro));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `sed` that switches the distribution's own BaseOS/AppStream off, for hosts that use mirrors.
pub(crate) const DISABLE_DISTRO_REPOS: &str = "sed -i -e '/^\\[baseos\\]/,/^\\[/ s/^enabled=.*/enabled=0/' -e '/^\\[appstream\\]/,/^\\[/ s/^enabled=.*/enabled=0/' /etc/yum.repos.d/*.repo";

/// The repositories as a `.repo` file.
pub(crate) fn repo_file(repos: &[Repo]) -> String {
    let mut out = String::from("# Repositories of this host, generated by pgimg.\n");
    for r in repos {
        out.push_str(&format!(
            "\n[{}]\nname={}\nbaseurl={}\nenabled=1\ngpgcheck=1\n",
            r.id, r.name, r.baseurl
        ));
        if r.repo_gpgcheck {
            out.push_str("repo_gpgcheck=1\n");
        }
        if let Some(k) = &r.gpgkey {
            out.push_str(&format!("gpgkey={k}\n"));
        }
        if !r.includepkgs.is_empty() {
            out.push_str(&format!("includepkgs={}\n", r.includepkgs.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_parses_and_extras_is_the_current_location() {
        let d = data();
        assert_eq!(d.pgdg_default, crate::model::defaults::PGDG_URL);
        let extras = d
            .pgdg
            .iter()
            .find(|r| r.id == "pgdg-rhel9-extras")
            .expect("extras");
        let url = fill(
            extras.url.template(Distro::Rocky),
            &d.pgdg_default,
            17,
            Distro::Rocky,
        );
        assert_eq!(
            url,
            "https://download.postgresql.org/pub/repos/yum/extras/redhat/rhel-9-$basearch"
        );
        assert!(
            !all_default_urls()
                .iter()
                .any(|u| u.contains("/common/pgdg-rhel9-extras/"))
        );
        assert_eq!(extras.roles, vec![Role::Etcd]);
        assert_eq!(extras.includepkgs, vec!["etcd*".to_string()]);
    }
}
