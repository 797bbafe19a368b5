//! Storage and locale facts of a host's plan: the systemd `.mount` unit of a
//! shared posix pgBackRest repository, and the glibc language pack initdb's
//! locale needs.

use serde::Serialize;

use super::context::Mapping;
use crate::model::BackupRepo;
use crate::spec::v1::RepoType;

/// Mount options of an NFS repository when the spec gives none: NFS 4.2,
/// `hard` so that pgBackRest sees a stall rather than a silent I/O error.
pub(crate) const DEFAULT_NFS_OPTIONS: &str = crate::spec::defaults::NFS_OPTIONS;

/// A path as systemd names its `.mount` unit (`systemd-escape --path`): the
/// leading `/` dropped, `/` → `-`, and every byte other than ASCII letters,
/// digits, `_` and a non-leading `.` as `\xNN` (systemd.unit(5), "String Escaping").
pub(crate) fn escape_path(path: &str) -> String {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i > 0 => out.push('.'),
            b if b.is_ascii_alphanumeric() || b == b'_' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The `.mount` unit of a shared posix repository (`pgbackrest.mount`).
#[derive(Debug, Clone, Serialize)]
pub struct MountContext {
    /// The unit's name, `srv-pgbackrest.mount`.
    pub unit: String,
    pub unit_path: String,
    /// `server:/export`.
    pub what: String,
    /// The mount point as the host's files name it (mapped in a lab build).
    #[serde(rename = "where")]
    pub at: String,
    /// The mount point, unmapped.
    pub path: String,
    pub options: String,
}

/// The mount of a site's shared posix repository, for the pg role's mount unit.
pub(crate) fn repo_mount(repos: &[&BackupRepo], m: &Mapping, host: &str) -> Option<MountContext> {
    let (r, mount) = repos
        .iter()
        .filter(|r| r.kind == RepoType::Posix)
        .find_map(|r| r.mount.as_ref().map(|mt| (*r, mt)))?;
    let path = r
        .path
        .clone()
        .unwrap_or_else(|| "/var/lib/pgbackrest".into());
    let unit = format!("{}.mount", escape_path(&path));
    Some(MountContext {
        unit_path: format!("/etc/systemd/system/{unit}"),
        unit,
        what: format!("{}:{}", mount.server, mount.export),
        at: m.path(host, &path),
        path,
        options: mount
            .options
            .as_ref()
            .map(|o| o.0.clone())
            .unwrap_or_else(|| DEFAULT_NFS_OPTIONS.into()),
    })
}

/// The glibc language pack initdb's locale needs on EL9 (`glibc-langpack-en`
/// for `en_US.UTF-8`); none for `C`, `C.UTF-8` and `POSIX`, which glibc
/// itself carries.
pub(crate) fn langpack(locale: &str) -> Option<String> {
    let lang = locale.split(['_', '.', '@']).next().unwrap_or("");
    if lang.is_empty() || matches!(lang, "C" | "POSIX") {
        return None;
    }
    Some(format!("glibc-langpack-{}", lang.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_systemd_escape_path() {
        assert_eq!(escape_path("/srv/pgbackrest"), "srv-pgbackrest");
        assert_eq!(
            escape_path("/var/lib/pg-backrest"),
            "var-lib-pg\\x2dbackrest"
        );
        assert_eq!(escape_path("/mnt/.hidden/a.b"), "mnt-.hidden-a.b");
        assert_eq!(escape_path("/.x"), "\\x2ex");
    }

    #[test]
    fn langpacks() {
        assert_eq!(
            langpack("en_US.UTF-8").as_deref(),
            Some("glibc-langpack-en")
        );
        assert_eq!(
            langpack("de_DE.UTF-8").as_deref(),
            Some("glibc-langpack-de")
        );
        assert_eq!(langpack("C.UTF-8"), None);
        assert_eq!(langpack("C"), None);
        assert_eq!(langpack("POSIX"), None);
    }
}
