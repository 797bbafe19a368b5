//! `pgimg lab`: start a spec's cluster for real on one machine, from the
//! very artifacts a build renders.
//!
//! A lab build is `crate::build` with a lab `Mapping` (every host on its own
//! loopback address, every absolute path under `<lab root>/<host>`); nothing
//! else differs from a real build. The lab then plays the part of the
//! machines, reading the hosts' plans, never parsing what was rendered: it
//! lays out each host's planned files and directories (bytes from the
//! build's tree, modes from the plan), links this machine's programs where
//! the plan's `binaries` say the packages put them, and starts the plan's
//! `services` the way systemd runs their units (`ExecStart`, `Environment`,
//! and `EnvironmentFile`s read at start, as systemd reads them), as one
//! unprivileged user. Unlike the rest of the crate this module does I/O and
//! runs processes: it sits outside the pure pipeline.
//!
//! `prepare.rs` lays out, `daemons.rs` starts and stops, `health.rs` waits,
//! `status.rs` reports, `state.rs` persists, `host.rs` knows this machine.
//!
//! Bookkeeping lives in `<lab root>/.lab/`: `state.json` (the topology as
//! mapped), `procs` (every process started, with its start time) and `log/`.

pub mod boot;
pub(crate) mod mapping;

mod daemons;
mod health;
mod host;
mod http;
mod prepare;
mod procs;
mod state;
mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::model::{Cluster, Fleet};
use crate::plan::context::{paths, stanza};
use crate::spec::v1::Role;

pub use prepare::{default_root, lab_secrets, root_of};
pub use procs::Proc;
pub use state::{HaproxyState, HostState, Lab, Member, PgState, ServiceState, SiteState, State};

use host::*;

const ETCD_TIMEOUT: Duration = Duration::from_secs(60);
const SITE_TIMEOUT: Duration = Duration::from_secs(240);
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What `pgimg lab` was asked to do it on.
#[derive(Debug, Clone)]
pub struct Options {
    pub spec: PathBuf,
    pub cluster: Option<String>,
    /// Default `/tmp/pgimg-lab/<cluster>`.
    pub root: Option<PathBuf>,
    /// The second octet of the lab's loopback addresses (`127.<net>.<site>.<host>`).
    pub net: u8,
    pub roles: Option<PathBuf>,
}

pub(crate) fn fail(msg: impl Into<String>) -> Error {
    Error::Input(msg.into())
}

pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(action, path, e)
}

/// Progress of `lab up` and `down`, on stderr; a closed stderr is no reason to fail.
pub(crate) fn say(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{args}");
}

pub(crate) fn elapsed(t: Instant) -> String {
    format!("{:.1} s", t.elapsed().as_secs_f64())
}

/// `pgimg lab up`.
pub fn up(opts: &Options) -> Result<Lab, Error> {
    let lab = Lab::prepare(opts)?;
    if let Err(e) = lab.start() {
        say(format_args!(
            "lab did not become healthy; `pgimg lab status` and the logs say why, `pgimg lab down` cleans up"
        ));
        return Err(e);
    }
    Ok(lab)
}
