//! The opt-in install file with the host's secrets in it (`pgimg build
//! --embed-secrets`): the host's reviewable kickstart or user-data plus
//! every file of its secrets contract (`crate::plan::secrets::host_files`,
//! the same source as `secrets.list`, `secrets/<host>/` and the bundle), at
//! its path with its owner, group and mode. Written only as
//! `secrets/<host>/kickstart.ks` (hosts installed over PXE) or
//! `secrets/<host>/user-data` (cloud hosts), never under `hosts/`.
//!
//! Values travel base64-encoded: a kickstart decodes each from a quoted
//! here-document whose delimiter contains `_`, which base64 never does, and
//! cloud-init decodes `encoding: b64`; no byte of a value is ever shell or
//! YAML syntax.

use super::USER_DATA_LIMIT;
use super::cloudinit::{self, UserData};
use crate::Error;
use crate::load::SecretValues;
use crate::model::{Cluster, Host, Site};
use crate::plan::HostPlan;
use crate::plan::secrets::{self as contract, SecretFile};
use crate::render::templates::Templates;

/// A contract file with its bytes.
#[derive(Debug, Clone)]
pub struct Secret {
    pub file: SecretFile,
    pub bytes: Vec<u8>,
}

/// The here-document delimiter of every embedded value.
pub const DELIMITER: &str = "PGIMG_SECRET";
/// The first and last line of the kickstart's secrets block.
pub const BEGIN: &str = "# pgimg: the embedded secrets of this host";
pub const END: &str = "# pgimg: end of the embedded secrets";

/// The host's secret files in install order (patroni.env last): `None`
/// when it has none, `Some(Err(()))` when a value is missing, since a
/// partial set would let Patroni start without, say, its REST password.
pub fn host_secrets(
    cluster: &Cluster,
    site: &Site,
    host: &Host,
    values: &SecretValues,
) -> Option<Result<Vec<Secret>, ()>> {
    let files = contract::host_files(cluster, site, host);
    if files.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for f in contract::install_order(&files) {
        match contract::file_bytes(f, |r| values.values.get(&r.label()).cloned()) {
            Ok(bytes) => out.push(Secret {
                file: f.clone(),
                bytes,
            }),
            Err(_) => return Some(Err(())),
        }
    }
    Some(Ok(out))
}

/// The `%post` lines that write the secrets, then take them out of the
/// copies of the kickstart anaconda leaves on the host.
pub fn kickstart_block(secrets: &[Secret]) -> String {
    let mut out = format!(
        "{BEGIN}\n\
         # Each file of secrets.list, decoded from base64 with its owner, group and mode\n\
         # (patroni.env last); created under umask 077, so never readable by others.\n\
         pgimg_secret() {{\n\
         \x20 (umask 022; mkdir -p \"${{1%/*}}\")\n\
         \x20 (umask 077; base64 -d > \"$1.pgimg-new\")\n\
         \x20 chown \"$2:$3\" \"$1.pgimg-new\"\n\
         \x20 chmod \"$4\" \"$1.pgimg-new\"\n\
         \x20 mv -f \"$1.pgimg-new\" \"$1\"\n\
         }}\n"
    );
    for s in secrets {
        let f = &s.file;
        out.push_str(&format!(
            "pgimg_secret {} {} {} {:04o} <<'{DELIMITER}'\n{}\n{DELIMITER}\n",
            f.path,
            f.owner,
            f.group,
            f.mode,
            super::base64(&s.bytes, 76)
        ));
    }
    // anaconda stores the kickstart as /root/anaconda-ks.cfg before %post
    // runs (pyanaconda/installation.py: "Store kickstarts" precedes "Run post
    // installation scripts"), %post bodies included; each here-document's
    // payload goes, its command stays as a record. anaconda also leaves this
    // script as /tmp/ks-script-* (pyanaconda/core/kickstart/scripts.py, run_script).
    out.push_str(&format!(
        "for ks in /root/anaconda-ks.cfg /root/original-ks.cfg; do\n\
         \x20 if [ -f \"$ks\" ]; then sed -i \"/<<'{DELIMITER}'\\$/,/^{DELIMITER}\\$/{{//!d}}\" \"$ks\"; fi\n\
         done\n\
         case $0 in */ks-script-*) rm -f -- \"$0\" ;; esac\n\
         {END}"
    ));
    out
}

/// The reviewable kickstart's line that says it holds no secret, and the
/// embedded one's instead.
const NO_SECRET: &str =
    "# No secret is in this file: deliver the host's secrets separately before Patroni starts.\n";
/// The first line of the HTTPS fetch in `%post`, and the line that runs it.
const FETCH_FIRST: &str = "# The host's secrets: its bundle over HTTPS";
const FETCH_RUN: &str = "/fetch-secrets https \"$secrets_sha256\"";
/// The line of `%post` right after the secrets step.
const AFTER_SECRETS: &str = "# Kernel settings: the kernel running now is the installer's";

/// anaconda's own `%post` (data/post-scripts/99-copy-logs.ks) copies the
/// kickstart it read to /root/original-ks.cfg unless /tmp/NOSAVE_INPUT_KS
/// exists in the installer's file system; it runs after this file's scripts.
const NOSAVE_INPUT: &str = "\n# anaconda keeps a copy of the kickstart it read as /root/original-ks.cfg\n\
# unless this flag exists: with the secrets in it, no copy may stay on the host.\n\
%post --nochroot\n\
touch /tmp/NOSAVE_INPUT_KS\n\
%end\n";

/// The embedded kickstart: the reviewable one, rendered by the same
/// template, with the secrets block in place of the HTTPS fetch (no
/// network, no digest), its header saying what it holds, and anaconda told
/// not to keep its input copy. Spliced into the rendered text rather than
/// rendered from a template of its own, so that the reviewable kickstart and
/// the role tree's digest are what they are without `--embed-secrets`.
pub fn kickstart(
    templates: &Templates,
    host: &Host,
    plan: &HostPlan,
    overlay: &[u8],
    secrets: &[Secret],
) -> Result<String, Error> {
    let reviewable = super::kickstart::render(templates, host, plan, overlay)?;
    splice(&reviewable, &host.name, &kickstart_block(secrets)).map_err(|what| {
        Error::Template(format!(
            "{} for host {}: cannot embed the secrets: {what}",
            super::kickstart::TEMPLATE,
            host.name
        ))
    })
}

fn splice(ks: &str, host: &str, block: &str) -> Result<String, String> {
    let lines: Vec<&str> = ks.split_inclusive('\n').collect();
    let once = |what: &str, found: &dyn Fn(&str) -> bool| {
        let at: Vec<usize> = (0..lines.len()).filter(|i| found(lines[*i])).collect();
        match at.as_slice() {
            [i] => Ok(*i),
            _ => Err(format!("expected one line {what:?}, found {}", at.len())),
        }
    };
    let header = once(NO_SECRET, &|l| l == NO_SECRET)?;
    let after = once(AFTER_SECRETS, &|l| l.starts_with(AFTER_SECRETS))?;
    let fetch = match (
        once(FETCH_FIRST, &|l| l.starts_with(FETCH_FIRST)),
        once(FETCH_RUN, &|l| l.trim_end().ends_with(FETCH_RUN)),
    ) {
        (Ok(first), Ok(run)) if first < run && run < after => Some(first..=run),
        (Err(_), Err(_)) => None,
        _ => return Err("the HTTPS fetch is not where it belongs".into()),
    };
    let mut out = String::with_capacity(ks.len() + block.len() + NOSAVE_INPUT.len());
    for (i, line) in lines.iter().enumerate() {
        if i == header {
            out.push_str(&format!(
                "# This file holds the secrets of {host} (pgimg build --embed-secrets): whoever can read it can read them.\n"
            ));
            continue;
        }
        if fetch.as_ref().is_some_and(|f| f.contains(&i)) {
            continue;
        }
        if i == after {
            out.push_str(block);
            out.push('\n');
        }
        out.push_str(line);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(NOSAVE_INPUT);
    Ok(out)
}

/// The embedded user-data, within EC2's limit like the reviewable one, or
/// the error that says which host, how big, and what to do.
pub(crate) fn user_data(
    host: &Host,
    plan: &HostPlan,
    overlay: &[u8],
    secrets: &[Secret],
) -> Result<UserData, String> {
    let text = cloudinit::text_with(host, plan, overlay, secrets).into_bytes();
    let raw = text.len();
    let gz = crate::render::overlay::gzip(&text).len();
    cloudinit::fit(&host.name, text).map_err(|_| {
        format!(
            "host {}: the user-data with its secrets embedded (--embed-secrets) is {raw} bytes \
             ({gz} gzip-compressed), over EC2's limit of {USER_DATA_LIMIT} bytes; deliver this \
             host's secrets by SSM (`secrets.delivery`) or from secrets/{}/ instead",
            host.name, host.name
        )
    })
}
