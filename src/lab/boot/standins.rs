//! The services outside a cluster that its install paths and daemons call,
//! stood in on the lab's bridge by one process (`lab/boot-standins.py`) in a
//! network namespace of its own at `ADDRESS`: the EC2 instance metadata
//! service and SSM Parameter Store (cloud hosts' `fetch-secrets ssm`), the
//! HTTPS server of the secrets bundles (bare-metal hosts' `%post`), and S3
//! (pgBackRest's repositories).
//!
//! How the hosts reach it, the only differences from a real data centre:
//! the metadata endpoint's IP is an entry of the boot build's `Mapping`
//! (`169.254.169.254` → `ADDRESS`); the names (the bundle host, the SSM and
//! S3 endpoints) resolve to `ADDRESS` through the `/etc/hosts` the boot build
//! renders (`Mapping::names`), as a site's internal DNS would answer; and TLS
//! is checked against a lab CA that the lab adds to each container's trust
//! store, as a site's internal CA is.

use base64::Engine;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;
use crate::model::Cluster;
use crate::spec::v1::{RepoType, UriStyle};

/// The stand-ins' address: the last of 198.18.0.0/15, apart from every
/// site's `198.18.<n>.0/24`.
pub const ADDRESS: &str = "198.19.255.254";
/// The EC2 instance metadata service's fixed address (docs.aws.amazon.com/
/// AWSEC2/latest/UserGuide/instancedata-data-retrieval.html).
pub const IMDS: &str = "169.254.169.254";
/// The server, data in the repository.
pub const SERVER: &str = include_str!("../../../lab/boot-standins.py");
/// Where the CA lands in a container: Debian's `update-ca-certificates`
/// reads `/usr/local/share/ca-certificates/*.crt` (update-ca-certificates(8)).
pub const CA_IN_HOST: &str = "/usr/local/share/ca-certificates/pgimg-boot-lab.crt";
/// The region the metadata service gives a host without an S3 repository.
const DEFAULT_REGION: &str = "us-east-1";

fn fail(msg: impl Into<String>) -> Error {
    Error::Input(msg.into())
}

/// What the stand-ins serve for one cluster.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Names that resolve to `ADDRESS` and that the certificate names.
    pub names: BTreeSet<String>,
    pub buckets: BTreeSet<String>,
    /// Mapped host address → the region its metadata says.
    pub regions: BTreeMap<String, String>,
    /// SSM parameter name → value.
    pub parameters: BTreeMap<String, String>,
    /// The bundle URL's host and path, when bare-metal hosts fetch a bundle.
    pub bundle: Option<(String, String)>,
}

/// `scheme://host[:port]/path` → (host, path).
fn split_url(u: &str) -> Option<(String, String)> {
    let rest = u.split_once("://")?.1;
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    Some((host.to_ascii_lowercase(), path.to_string()))
}

/// The stand-ins a cluster needs, from the spec and the lab's secret values
/// (keyed by the references' labels, as `lab_secrets` gives them).
pub fn plan(
    cluster: &Cluster,
    m: &crate::plan::context::Mapping,
    values: &BTreeMap<String, String>,
) -> Plan {
    let mut p = Plan::default();
    let d = &cluster.secrets.delivery;
    let mut regions = BTreeSet::new();
    for s in &cluster.sites {
        for h in &s.hosts {
            let mut region = None;
            for r in &h.config.pgbackrest.repos {
                if r.kind != RepoType::S3 {
                    continue;
                }
                let reg = r.region.clone().unwrap_or_default();
                region.get_or_insert_with(|| reg.clone());
                regions.insert(reg.clone());
                let endpoint = r
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| format!("s3.{reg}.amazonaws.com"));
                let endpoint = endpoint
                    .rsplit_once(':')
                    .map_or(endpoint.clone(), |(h, _)| h.to_string());
                if let Some(b) = &r.bucket {
                    p.buckets.insert(b.clone());
                    if r.uri_style == UriStyle::Host {
                        p.names.insert(format!("{b}.{endpoint}"));
                    }
                }
                p.names.insert(endpoint.to_ascii_lowercase());
            }
            p.regions.insert(
                m.addr(&h.address),
                region.unwrap_or_else(|| DEFAULT_REGION.to_string()),
            );
        }
    }
    if let Some(s) = &d.ssm {
        match &s.endpoint {
            Some(e) => {
                if let Some((h, _)) = split_url(e.as_str()) {
                    p.names.insert(h);
                }
            }
            None => {
                regions.insert(DEFAULT_REGION.to_string());
                if let Some(r) = &s.region {
                    regions.insert(r.to_string());
                }
                for r in &regions {
                    p.names.insert(format!("ssm.{r}.amazonaws.com"));
                }
            }
        }
        let prefix = crate::plan::secrets::ssm_prefix(cluster);
        let repo_refs = cluster
            .sites
            .iter()
            .flat_map(|s| &s.hosts)
            .flat_map(|h| &h.config.pgbackrest.repos)
            .flat_map(|r| [&r.key, &r.key_secret])
            .flatten();
        for r in cluster.secrets.refs().chain(repo_refs) {
            if let Some(v) = values.get(&r.label()) {
                p.parameters.insert(
                    format!("{prefix}/{}", crate::plan::secrets::ssm_name(r)),
                    v.clone(),
                );
            }
        }
        // A PEM file's parameter holds the file base64-encoded on one line, as
        // `fetch-secrets` reads it (an operator's `base64 -w0 FILE`).
        let tls_refs = cluster.secrets.tls_ca.iter().flat_map(|ca| {
            let hosts = cluster.sites.iter().flat_map(|s| &s.hosts);
            std::iter::once(ca.clone()).chain(hosts.flat_map(|h| {
                let (cert, key) = crate::secrets::host_tls(ca, &h.name);
                [cert, key]
            }))
        });
        for r in tls_refs {
            if let Some(v) = values.get(&r.label()) {
                p.parameters.insert(
                    format!("{prefix}/{}", crate::plan::secrets::ssm_name(&r)),
                    base64::engine::general_purpose::STANDARD.encode(format!("{}\n", v.trim_end())),
                );
            }
        }
    }
    if let Some(h) = &d.https
        && let Some((host, path)) = split_url(h.url.as_str())
    {
        p.names.insert(host.clone());
        p.bundle = Some((host, path));
    }
    // A name that is an IP literal is not a name: the mapping moves those.
    p.names.retain(|n| n.parse::<std::net::IpAddr>().is_err());
    p
}

fn openssl(args: &[&str], dir: &Path) -> Result<(), Error> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("running openssl (Debian package `openssl`): {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// A lab CA and the stand-ins' certificate for every name (and `ADDRESS`),
/// in `dir`: `ca.crt`, `server.crt`, `server.key`. Fresh keys each lab.
pub fn certificates(p: &Plan, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=pgimg boot lab CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        dir,
    )?;
    let mut san: Vec<String> = p.names.iter().map(|n| format!("DNS:{n}")).collect();
    san.push(format!("IP:{ADDRESS}"));
    let ext = format!(
        "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        san.join(",")
    );
    std::fs::write(dir.join("server.ext"), ext).map_err(|e| Error::io("writing", dir, e))?;
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=pgimg boot lab stand-ins",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    )?;
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        dir,
    )
}

/// The server's configuration.
pub fn config(p: &Plan, dir: &Path, bundles: &Path) -> serde_json::Value {
    let (bundle_host, bundle_path) = p.bundle.clone().unwrap_or_default();
    serde_json::json!({
        "address": ADDRESS,
        "log": dir.join("requests.log"),
        "ready": dir.join("ready"),
        "cert": dir.join("server.crt"),
        "key": dir.join("server.key"),
        "regions": p.regions,
        "default_region": DEFAULT_REGION,
        "parameters": p.parameters,
        "bundle_host": bundle_host,
        "bundle_path": bundle_path,
        "bundles": bundles,
        "s3": dir.join("s3"),
        "buckets": p.buckets,
    })
}

/// Starts the server in `netns`; returns its pid once it listens (bounded).
pub fn start(dir: &Path, netns: &str, python: &Path) -> Result<u32, Error> {
    let log =
        std::fs::File::create(dir.join("server.log")).map_err(|e| Error::io("creating", dir, e))?;
    let log2 = log.try_clone().map_err(|e| Error::io("opening", dir, e))?;
    let child = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(python)
        .arg(dir.join("boot-standins.py"))
        .arg(dir.join("config.json"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| fail(format!("starting the stand-ins: {e}")))?;
    let pid = child.id();
    std::mem::forget(child);
    let t = Instant::now();
    while !dir.join("ready").exists() {
        if t.elapsed() > Duration::from_secs(20) || !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(fail(format!(
                "the stand-ins did not start within 20 s: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(pid)
}

/// Whether `pid` is still the stand-ins' server of the lab at `dir`.
pub fn is_ours(pid: u32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b).contains(&*dir.join("boot-standins.py").to_string_lossy())
        })
        .unwrap_or(false)
}

/// The requests the stand-ins logged, one JSON object each.
pub fn requests(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("requests.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn dir_of(root: &Path) -> PathBuf {
    root.join("standins")
}
