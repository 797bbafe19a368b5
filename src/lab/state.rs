//! The lab's persisted state (`.lab/state.json`): the topology as mapped,
//! what `status` and `down` need without the spec.

use super::*;

/// The topology of a lab as mapped: what `status` and `down` need without the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub cluster: String,
    pub root: PathBuf,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub pg_bindir: PathBuf,
    pub tools_dir: Vec<PathBuf>,
    pub superuser_password: String,
    pub sites: Vec<SiteState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteState {
    pub name: String,
    pub scope: String,
    pub standby_of: Option<String>,
    pub slot_name: String,
    pub stanza: String,
    pub hosts: Vec<HostState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    /// The daemons the host's plan runs, as its units start them.
    #[serde(default)]
    pub services: Vec<ServiceState>,
    pub member: String,
    pub address: String,
    pub localhost: String,
    pub etcd_client_port: Option<u16>,
    pub etcd_peer_port: Option<u16>,
    /// Every port the host's roles open, as planned from `role.yaml`.
    #[serde(default)]
    pub ports: Vec<u16>,
    pub pg: Option<PgState>,
    pub haproxy: Option<HaproxyState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgState {
    pub port: u16,
    pub restapi_port: u16,
    /// Mapped.
    pub data_dir: PathBuf,
    pub superuser: String,
    /// Mapped.
    pub patroni_config: PathBuf,
    pub pgbackrest_config: PathBuf,
    pub socket_dir: PathBuf,
    /// S3 repositories (number, local stand-in directory).
    pub s3_repos: Vec<(u32, PathBuf)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HaproxyState {
    pub write_port: u16,
    pub read_port: u16,
    pub stats_port: u16,
}

/// One member as Patroni's `GET /cluster` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub host: String,
    pub role: String,
    pub state: String,
    pub timeline: Option<u64>,
    pub lag: Option<u64>,
}

impl SiteState {
    pub fn pg_hosts(&self) -> impl Iterator<Item = &HostState> {
        self.hosts.iter().filter(|h| h.pg.is_some())
    }
    pub fn haproxy(&self) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.haproxy.is_some())
    }
    pub fn is_dr(&self) -> bool {
        self.standby_of.is_some()
    }
}

/// A lab on disk.
pub struct Lab {
    pub state: State,
}

impl Lab {
    pub fn root(&self) -> &Path {
        &self.state.root
    }

    /// `<lab root>/<host>`.
    pub fn host_root(&self, host: &str) -> PathBuf {
        self.state.root.join(host)
    }

    /// Where an absolute path of `host` is in the lab.
    pub fn path(&self, host: &str, abs: &str) -> PathBuf {
        PathBuf::from(format!("{}{abs}", self.host_root(host).display()))
    }

    pub(crate) fn dot(&self) -> PathBuf {
        self.state.root.join(".lab")
    }

    pub(crate) fn procs_file(&self) -> PathBuf {
        self.dot().join("procs")
    }

    pub fn log_file(&self, host: &str, service: &str) -> PathBuf {
        self.dot().join("log").join(format!("{host}.{service}.log"))
    }

    pub fn site(&self, name: &str) -> Option<&SiteState> {
        self.state.sites.iter().find(|s| s.name == name)
    }

    pub fn host(&self, name: &str) -> Option<&HostState> {
        self.state
            .sites
            .iter()
            .flat_map(|s| s.hosts.iter())
            .find(|h| h.name == name)
    }

    pub fn records(&self) -> Vec<Proc> {
        procs::read_records(&self.procs_file())
    }

    /// Opens the lab at `root`.
    pub fn open(root: &Path) -> Result<Lab, Error> {
        let file = root.join(".lab").join("state.json");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                fail(format!("no lab at {} (no .lab/state.json)", root.display()))
            } else {
                Error::io("reading", &file, e)
            }
        })?;
        let state: State =
            serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", file.display())))?;
        Ok(Lab { state })
    }
}

/// A daemon of a host as its unit starts it, mapped into the lab root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceState {
    pub name: String,
    pub exec: Vec<String>,
    /// Read at start as systemd reads `EnvironmentFile=` (`-`: may be absent).
    pub environment_files: Vec<String>,
    pub environment: Vec<(String, String)>,
}
