//! The per-host secrets artifacts, laid out by the host's secrets contract
//! (`crate::plan::secrets`): `secrets/<host>/<path on the host>` (mode
//! 0600 in the output), `secrets/<host>.tar.gz` (the same files with their
//! owners and modes on the host: the bundle bare-metal hosts fetch) and its
//! `secrets/<host>.tar.gz.sha256`. None of them enters the manifest.

use std::collections::{BTreeMap, BTreeSet};

use super::{Artifact, RootfsEntry};
use crate::load::SecretValues;
use crate::model::Fleet;
use crate::plan::secrets as contract;

/// Secret files per host, and the references the hosts need that were not supplied.
pub(crate) fn render(
    fleet: &Fleet,
    values: &SecretValues,
) -> (Vec<(String, Artifact)>, BTreeSet<String>) {
    let mut files = Vec::new();
    let mut missing = BTreeSet::new();
    for (cluster, site, host) in fleet.hosts() {
        let (f, m) = render_host(cluster, site, host, values, fleet.source_date_epoch);
        files.extend(f);
        missing.extend(m);
    }
    (files, missing)
}

/// One host's secret files, and the references it needs that were not supplied.
pub(crate) fn render_host(
    cluster: &crate::model::Cluster,
    site: &crate::model::Site,
    host: &crate::model::Host,
    values: &SecretValues,
    source_date_epoch: u64,
) -> (Vec<(String, Artifact)>, BTreeSet<String>) {
    let mut files = Vec::new();
    let mut missing = BTreeSet::new();
    {
        let mut bundle: BTreeMap<String, RootfsEntry> = BTreeMap::new();
        let mut complete = true;
        for f in contract::host_files(cluster, site, host) {
            match contract::file_bytes(&f, |r| values.values.get(&r.label()).cloned()) {
                Ok(bytes) => {
                    files.push((
                        format!("secrets/{}{}", host.name, f.path),
                        Artifact {
                            bytes: bytes.clone(),
                            mode: 0o600,
                        },
                    ));
                    add_file(&mut bundle, f.path, bytes, &f);
                }
                Err(m) => {
                    complete = false;
                    missing.extend(m);
                }
            }
        }
        // A partial bundle would let Patroni start without, say, its REST password.
        if complete && !bundle.is_empty() {
            // The bundle's owners and paths are pgimg's own (root, postgres,
            // fixed paths), never the spec's: they always fit a tar header.
            let tar = super::overlay::tar_gz(&bundle, source_date_epoch)
                .expect("the secrets bundle's fixed owners and paths fit a tar header");
            let sum = super::manifest::sha256(&tar);
            files.push((
                format!("secrets/{}.tar.gz.sha256", host.name),
                Artifact {
                    bytes: format!("{sum}  {}.tar.gz\n", host.name).into_bytes(),
                    mode: 0o600,
                },
            ));
            files.push((
                format!("secrets/{}.tar.gz", host.name),
                Artifact {
                    bytes: tar,
                    mode: 0o600,
                },
            ));
        }
    }
    (files, missing)
}

/// The bundle holds only the secret files themselves: their directories
/// exist on the host already (the overlay creates them with their own owners),
/// and an entry for `/etc` would reset its mode on extraction.
fn add_file(
    bundle: &mut BTreeMap<String, RootfsEntry>,
    path: &str,
    bytes: Vec<u8>,
    f: &contract::SecretFile,
) {
    bundle.insert(
        path.to_string(),
        RootfsEntry {
            content: Some(bytes),
            mode: f.mode,
            owner: f.owner.to_string(),
            group: f.group.to_string(),
        },
    );
}

/// `hosts/<host>/secrets.list`: the host's contract, names only.
pub(crate) fn listing(
    cluster: &crate::model::Cluster,
    site: &crate::model::Site,
    host: &crate::model::Host,
) -> (String, Artifact) {
    let files = contract::host_files(cluster, site, host);
    let delivery = contract::delivery_words(cluster, host);
    (
        format!("hosts/{}/secrets.list", host.name),
        Artifact {
            bytes: contract::listing(host, &files, &delivery).into_bytes(),
            mode: 0o644,
        },
    )
}
