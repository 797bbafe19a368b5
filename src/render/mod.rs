//! Stage "render": plans → bytes, in memory.
//!
//! Pure: nothing here reads or writes files, the clock or the environment.
//! Each host's planned entries are produced (templates through
//! `templates.rs`, typed files such as `patroni.yml` through their
//! serializers), then laid out as the host's artifacts; `install/` renders
//! the install formats that carry them to a bare machine.

pub(crate) mod artifact;
pub(crate) mod daytwo;
pub mod install;
pub mod manifest;
pub mod overlay;
pub mod patroni;
pub(crate) mod secrets;
pub mod templates;
pub(crate) mod yaml;

use std::collections::BTreeMap;

use crate::Error;
use crate::model::{Cluster, Host, Site};
use crate::plan::context::Mapping;
use crate::plan::roles::TypedFile;
use crate::plan::{HostPlan, PlannedClusterFile, Producer};
pub use artifact::{Artifact, ArtifactTree};
use templates::Templates;

/// A file or directory as it lands on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsEntry {
    /// `None` for a directory.
    pub content: Option<Vec<u8>>,
    pub mode: u32,
    pub owner: String,
    pub group: String,
}

/// Produces every planned entry of a host's root file system.
pub fn rootfs(
    t: &Templates,
    plan: &HostPlan,
    cluster: &Cluster,
    site: &Site,
    host: &Host,
    m: &Mapping,
) -> Result<BTreeMap<String, RootfsEntry>, Error> {
    let ctx = handlebars::Context::wraps(&plan.context)
        .map_err(|e| Error::Template(format!("the context of host {}: {e}", plan.name)))?;
    let mut out = BTreeMap::new();
    for (path, p) in &plan.files {
        let content = match &p.producer {
            Producer::Directory => None,
            Producer::Template(name) => Some(
                t.render_file_with(name, &ctx)
                    .map_err(|e| Error::Template(format!("{e} (host {})", plan.name)))?
                    .into_bytes(),
            ),
            Producer::Typed(TypedFile::Patroni) => {
                Some(patroni::render(cluster, site, host, m).into_bytes())
            }
            Producer::User { bytes, .. } => Some(bytes.clone()),
        };
        out.insert(
            path.clone(),
            RootfsEntry {
                content,
                mode: p.mode,
                owner: p.owner.clone(),
                group: p.group.clone(),
            },
        );
    }
    Ok(out)
}

/// The per-host artifacts: the root file system as files, its overlay and listing, the RPM list.
pub fn host_artifacts(
    plan: &HostPlan,
    rootfs: &BTreeMap<String, RootfsEntry>,
    mtime: u64,
) -> Result<Vec<(String, Artifact)>, Error> {
    let base = format!("hosts/{}", plan.name);
    let mut out = Vec::new();
    for (path, e) in rootfs {
        if let Some(bytes) = &e.content {
            let mode = if e.mode & 0o111 != 0 { 0o755 } else { 0o644 };
            out.push((
                format!("{base}/rootfs{path}"),
                Artifact {
                    bytes: bytes.clone(),
                    mode,
                },
            ));
        }
    }
    out.push((
        format!("{base}/overlay.tar.gz"),
        Artifact {
            bytes: overlay::tar_gz(rootfs, mtime)
                .map_err(|e| Error::Template(format!("host {}: {e}", plan.name)))?,
            mode: 0o644,
        },
    ));
    out.push((
        format!("{base}/overlay.list"),
        Artifact {
            bytes: overlay::listing(rootfs).into_bytes(),
            mode: 0o644,
        },
    ));
    let mut rpms: String = plan.packages.iter().map(|p| format!("{p}\n")).collect();
    if rpms.is_empty() {
        rpms.push('\n');
    }
    out.push((
        format!("{base}/rpms.txt"),
        Artifact {
            bytes: rpms.into_bytes(),
            mode: 0o644,
        },
    ));
    Ok(out)
}

/// Renders a cluster's own files (`clusters/<cluster>/…`).
pub fn cluster_artifacts(
    t: &Templates,
    cluster: &str,
    files: &[PlannedClusterFile],
) -> Result<Vec<(String, Artifact)>, Error> {
    files
        .iter()
        .map(|f| {
            let text = t.render_file(&f.template, &f.context)?;
            Ok((
                format!("clusters/{cluster}/{}", f.path),
                Artifact {
                    bytes: text.into_bytes(),
                    mode: f.mode,
                },
            ))
        })
        .collect()
}
