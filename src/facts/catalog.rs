//! What the repositories ship for EL9 (`data/catalog.yaml`): the default
//! version pins come from here, and a pin outside it is a warning.

use std::sync::OnceLock;

use serde::Deserialize;

pub const CATALOG_YAML: &str = include_str!("../../data/catalog.yaml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// The day the lists were taken.
    pub taken: String,
    pub source: String,
    pub packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    pub name: String,
    /// The repository id of `data/repos.yaml` (with `{major}` filled in).
    pub repo: String,
    /// Oldest first.
    pub versions: Vec<String>,
}

pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_yaml::from_str(CATALOG_YAML)
            .unwrap_or_else(|e| panic!("data/catalog.yaml is invalid (a build-time fact): {e}"))
    })
}

pub fn package(name: &str) -> Option<&'static Package> {
    catalog().packages.iter().find(|p| p.name == name)
}

/// The versions known for a package (empty when the catalog has no list).
pub fn versions(name: &str) -> &'static [String] {
    package(name).map(|p| p.versions.as_slice()).unwrap_or(&[])
}

/// The newest known version: the default pin.
pub fn newest(name: &str) -> Option<&'static str> {
    versions(name).last().map(String::as_str)
}

/// True when `version` is a known version, or a full `version-release` of one.
pub fn knows(name: &str, version: &str) -> bool {
    versions(name).iter().any(|v| {
        version == v
            || version
                .strip_prefix(v.as_str())
                .is_some_and(|r| r.starts_with('-'))
    })
}

/// The default pins, taken from the catalog.
pub mod pins {
    use super::newest;

    pub fn patroni_rpm() -> String {
        newest("patroni").unwrap_or_default().to_string()
    }

    pub fn etcd() -> String {
        newest("etcd").unwrap_or_default().to_string()
    }

    pub fn pgbackrest() -> String {
        newest("pgbackrest").unwrap_or_default().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses_and_every_list_is_sorted_and_nonempty() {
        let c = catalog();
        assert!(c.taken.len() == 10);
        for p in &c.packages {
            assert!(!p.versions.is_empty(), "{}", p.name);
            let parsed: Vec<Vec<u64>> = p
                .versions
                .iter()
                .map(|v| v.split('.').map(|n| n.parse().expect("numeric")).collect())
                .collect();
            assert!(
                parsed.windows(2).all(|w| w[0] < w[1]),
                "{} not sorted",
                p.name
            );
        }
    }

    #[test]
    fn default_pins_are_the_newest_known() {
        assert_eq!(pins::patroni_rpm(), "4.1.0");
        assert_eq!(pins::etcd(), "3.6.8");
        assert_eq!(pins::pgbackrest(), "2.58.0");
        // The pip release of Patroni is not an RPM version.
        assert!(!knows("patroni", "4.1.5"));
        assert!(knows("patroni", "4.1.0-4PGDG.rhel9"));
        assert!(!knows("patroni", "4.1.00"));
    }
}
