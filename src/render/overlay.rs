//! The deterministic `overlay.tar.gz` of a host's rootfs.
//!
//! Headers are built from the plan, never from the file system: entries
//! sorted by path, every directory explicit, ustar headers only, owners by
//! name (with the fixed ids EL9 gives the system users), modes from the
//! plan, one mtime for all (the spec's source date, default 0), and gzip
//! without timestamp or file name at a fixed level.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};

use super::RootfsEntry;

/// Numeric ids for owner names. Extraction as root maps by name; the id is
/// what a name-less extraction falls back to, so an account without a fixed
/// id must never fall back to root.
fn id_of(name: &str) -> u64 {
    /// The kernel's overflow id (`nobody`): owns nothing that matters.
    const UNMAPPED: u64 = 65534;
    match name {
        "root" => 0,
        // The PGDG server RPM creates postgres with the id EL reserves for it
        // (setup's uidgid: 26), haproxy's RPM uses its reserved 188.
        "postgres" => 26,
        "haproxy" => 188,
        // The etcd RPM creates its user with a dynamic system id
        // (aiven/pgrpms rpm/redhat/main/extras/etcd/main/etcd-sysusers.conf:
        // `u etcd - …`): the archive can only carry its name.
        _ => UNMAPPED,
    }
}

/// The archive's bytes, or what a role's entry asks that a ustar archive
/// cannot hold (an owner name over the header's 32 bytes, a path too
/// long): every entry of `overlay.list` is in the archive, or the build fails.
pub fn tar_gz(entries: &BTreeMap<String, RootfsEntry>, mtime: u64) -> Result<Vec<u8>, String> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, e) in entries {
        let rel = path.trim_start_matches('/');
        let fail = |what: &str, err: &dyn std::fmt::Display| {
            format!("overlay entry {path}: {what}: {err}")
        };
        let mut header = tar::Header::new_ustar();
        header.set_mtime(mtime);
        header.set_mode(e.mode);
        header.set_uid(id_of(&e.owner));
        header.set_gid(id_of(&e.group));
        header
            .set_username(&e.owner)
            .map_err(|err| fail("owner name", &err))?;
        header
            .set_groupname(&e.group)
            .map_err(|err| fail("group name", &err))?;
        match &e.content {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                header.set_cksum();
                tar.append_data(&mut header, format!("{rel}/"), std::io::empty())
                    .map_err(|err| fail("archiving", &err))?;
            }
            Some(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                header.set_cksum();
                tar.append_data(&mut header, rel, bytes.as_slice())
                    .map_err(|err| fail("archiving", &err))?;
            }
        }
    }
    let raw = tar
        .into_inner()
        .map_err(|err| format!("overlay archive: {err}"))?;
    Ok(gzip(&raw))
}

/// gzip with no name, mtime 0 and level 6 (level 9 costs more time than it saves bytes on these small archives).
pub fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(6));
    let _ = gz.write_all(raw);
    gz.finish().unwrap_or_default()
}

/// A readable listing of the archive, one entry a line: mode, owner:group, size, path.
pub fn listing(entries: &BTreeMap<String, RootfsEntry>) -> String {
    let mut out = String::new();
    for (path, e) in entries {
        let (kind, size) = match &e.content {
            None => ('d', 0),
            Some(b) => ('-', b.len()),
        };
        out.push_str(&format!(
            "{kind}{:04o} {}:{} {size:>7} {path}{}\n",
            e.mode,
            e.owner,
            e.group,
            if kind == 'd' { "/" } else { "" }
        ));
    }
    out
}
