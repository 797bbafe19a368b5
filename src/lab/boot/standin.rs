//! The EL9 stand-in layer (`lab/el9-standin.yml`, embedded): turned into one
//! install script per package and recording stubs for the EL-only commands,
//! all written into a host's root before its install path runs. Inside the
//! container, `/usr/lib/pgimg-standin/install-package NAME` plays the RPM
//! transaction of one package (the `dnf` stub and the lab's anaconda call it),
//! and every stub appends its command line to `/var/log/pgimg-standin/calls.log`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::Error;

pub(crate) const DATA: &str = include_str!("../../../lab/el9-standin.yml");
/// Where the stand-in's own programs live inside a host.
pub(crate) const DIR: &str = "/usr/lib/pgimg-standin";
/// The image every host starts from, whatever its install path: EL9's `@core`.
pub(crate) const IMAGE: &str = "@core";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StandIn {
    pub packages: BTreeMap<String, Package>,
    pub stubs: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Package {
    pub source: String,
    #[serde(default)]
    pub groups: Vec<(String, Option<u32>)>,
    #[serde(default)]
    pub users: Vec<(String, Option<u32>, String, String, String)>,
    #[serde(default)]
    pub dirs: Vec<(String, String, String, String)>,
    #[serde(default)]
    pub links: Vec<(String, String)>,
    #[serde(default)]
    pub files: Vec<(String, String, String)>,
    #[serde(default)]
    pub stubs: Vec<String>,
    #[serde(default)]
    pub python: bool,
}

pub(crate) fn load() -> Result<StandIn, Error> {
    serde_yaml::from_str(DATA)
        .map_err(|e| Error::Input(format!("lab/el9-standin.yml (embedded): {e}")))
}

/// A shell word in single quotes.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

const RECORD: &str = r#"#!/bin/bash
# Stand-in recorder: appends its arguments, shell-quoted, to the calls log.
mkdir -p /var/log/pgimg-standin
printf '%q ' "$@" | sed 's/ $//' >>/var/log/pgimg-standin/calls.log
echo >>/var/log/pgimg-standin/calls.log
"#;

const INSTALL_PACKAGE: &str = r#"#!/bin/bash
# Stand-in RPM transaction of one package: runs its script, notes it installed.
set -euo pipefail
for p in "$@"; do
    # dnf takes NAME or NAME-VERSION[-RELEASE]: the stand-in has one version
    # per package, whatever version is asked (recorded as asked).
    name=$p
    while [[ ! -f /usr/lib/pgimg-standin/packages/$name.sh && $name =~ ^(.+)-[0-9][^-]*$ ]]; do
        name=${BASH_REMATCH[1]}
    done
    script=/usr/lib/pgimg-standin/packages/$name.sh
    if [[ ! -f $script ]]; then
        echo "No match for argument: $p (not in the EL9 stand-in, lab/el9-standin.yml)" >&2
        exit 1
    fi
    bash "$script"
    mkdir -p /var/lib/pgimg-standin
    echo "$p" >>/var/lib/pgimg-standin/installed
done
"#;

const DNF: &str = r#"#!/bin/bash
# Stand-in dnf: records the call; `install` runs the stand-in of each package.
/usr/lib/pgimg-standin/record dnf "$@"
cmd= pkgs=()
for a in "$@"; do
    case $a in
        -*) ;;
        *) if [[ -z $cmd ]]; then cmd=$a; else pkgs+=("$a"); fi ;;
    esac
done
case $cmd in
    install) ((${#pkgs[@]} == 0)) || exec /usr/lib/pgimg-standin/install-package "${pkgs[@]}" ;;
    makecache|clean|config-manager|module) ;;
    *) echo "dnf stand-in: \`$cmd\` is not modelled" >&2; exit 1 ;;
esac
"#;

const PYTHON: &str = r#"#!/bin/bash
# Stand-in python3.12: `-m venv DIR` makes a venv whose Patroni is the lab's;
# the lab has no package index, so its pip records and checks, installs nothing.
/usr/lib/pgimg-standin/record python3.12 "$@"
if [[ ${1:-} == -m && ${2:-} == venv && -n ${3:-} ]]; then
    dir=$3
    mkdir -p "$dir/bin"
    for t in python3 patroni patronictl; do ln -sfn "/opt/pgimg-deps/venv/bin/$t" "$dir/bin/$t"; done
    ln -sfn python3 "$dir/bin/python3.12"
    printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12 (stand-in)\n' >"$dir/pyvenv.cfg"
    cat >"$dir/bin/pip" <<'PIP'
#!/bin/bash
# Stand-in pip of the lab's Patroni venv: records, checks the requirements name patroni.
/usr/lib/pgimg-standin/record pip "$@"
prev=
for a in "$@"; do
    if [[ $prev == -r ]]; then
        grep -qi '^patroni' "$a" || { echo "pip stand-in: $a names no patroni" >&2; exit 1; }
    fi
    prev=$a
done
PIP
    chmod 0755 "$dir/bin/pip"
    exit 0
fi
exec python3 "$@"
"#;

/// Not EL9 but the container: its kernel settings belong to the machine, so
/// `sysctl` may only set the keys of the container's own network namespace.
/// This wrapper (first on root's PATH) runs the real one, records the call,
/// and fails only on errors other than those refusals.
const SYSCTL: &str = r#"#!/bin/bash
/usr/lib/pgimg-standin/record sysctl "$@"
err=$(/usr/sbin/sysctl "$@" 2>&1 >/dev/null); rc=$?
other=$(printf '%s\n' "$err" | grep -v -e '^$' -e 'permission denied on key' -e 'Read-only file system')
printf '%s\n' "$err" | grep -e 'permission denied on key' -e 'Read-only file system' \
    | sed 's/^/container, not settable: /' >>/var/log/pgimg-standin/calls.log
if [[ -n $other ]]; then printf '%s\n' "$other" >&2; exit $rc; fi
exit 0
"#;

/// The shell script that installs one package's stand-in.
pub(crate) fn package_script(name: &str, p: &Package) -> String {
    let mut s = format!(
        "# Stand-in of the RPM {name}: {}\nset -euo pipefail\n",
        p.source
    );
    for (g, gid) in &p.groups {
        let id = gid.map(|i| format!(" -o -g {i}")).unwrap_or_default();
        let _ = writeln!(s, "getent group {g} >/dev/null || groupadd -r{id} {g}");
    }
    for (u, uid, g, home, shell) in &p.users {
        let id = uid.map(|i| format!(" -o -u {i}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "getent passwd {u} >/dev/null || useradd -r -M{id} -g {g} -d {} -s {} {u}",
            q(home),
            q(shell)
        );
    }
    for (path, owner, group, mode) in &p.dirs {
        let _ = writeln!(s, "install -d -o {owner} -g {group} -m {mode} {}", q(path));
    }
    for (path, target) in &p.links {
        let _ = writeln!(
            s,
            "mkdir -p \"$(dirname {p})\" && ln -sfn {} {p}",
            q(target),
            p = q(path)
        );
    }
    for (path, mode, content) in &p.files {
        let _ = writeln!(
            s,
            "mkdir -p \"$(dirname {p})\"\ncat >{p} <<'PGIMG_STANDIN_EOF'\n{}PGIMG_STANDIN_EOF\nchmod {mode} {p}",
            content,
            p = q(path)
        );
    }
    for stub in &p.stubs {
        let _ = writeln!(s, "install -m 0755 {DIR}/stub {}", q(stub));
    }
    if p.python {
        let _ = writeln!(s, "install -m 0755 {DIR}/python3.12 /usr/bin/python3.12");
    }
    s
}

/// Every file of the stand-in's machinery, as (absolute path, mode, content).
pub(crate) fn files(standin: &StandIn) -> Vec<(String, u32, String)> {
    let mut out = vec![
        (format!("{DIR}/record"), 0o755, RECORD.to_string()),
        (
            format!("{DIR}/install-package"),
            0o755,
            INSTALL_PACKAGE.to_string(),
        ),
        (
            format!("{DIR}/stub"),
            0o755,
            format!(
                "#!/bin/bash\n# Stand-in of an EL-only command: records its arguments.\n{DIR}/record \"$(basename \"$0\")\" \"$@\"\n[[ $(basename \"$0\") != selinuxenabled ]]\n"
            ),
        ),
        (format!("{DIR}/python3.12"), 0o755, PYTHON.to_string()),
    ];
    for (name, p) in &standin.packages {
        out.push((
            format!("{DIR}/packages/{name}.sh"),
            0o644,
            package_script(name, p),
        ));
    }
    for stub in &standin.stubs {
        let name = stub.rsplit('/').next().unwrap_or(stub);
        let body = if name == "dnf" || name == "yum" {
            DNF.to_string()
        } else {
            format!("#!/bin/bash\nexec {DIR}/stub-as {name} \"$@\"\n")
        };
        out.push((stub.clone(), 0o755, body));
    }
    out.push((
        "/usr/local/sbin/sysctl".to_string(),
        0o755,
        SYSCTL.to_string(),
    ));
    out.push((
        format!("{DIR}/stub-as"),
        0o755,
        format!(
            "#!/bin/bash\n# Records `$1 $2…`; selinuxenabled answers \"disabled\".\n{DIR}/record \"$@\"\n[[ $1 != selinuxenabled ]]\n"
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_data_parses_and_models_the_el9_ids() {
        let s = load().expect("parses");
        let pg = &s.packages["postgresql17-server"];
        assert!(
            pg.users
                .iter()
                .any(|u| u.0 == "postgres" && u.1 == Some(26))
        );
        let ha = &s.packages["haproxy"];
        assert!(
            ha.users
                .iter()
                .any(|u| u.0 == "haproxy" && u.1 == Some(188))
        );
        for p in s.packages.values() {
            assert!(
                !p.source.is_empty(),
                "every entry says where its facts come from"
            );
        }
        let script = package_script("postgresql17-server", pg);
        assert!(
            script.contains("useradd -r -M -o -u 26 -g postgres -d '/var/lib/pgsql'"),
            "{script}"
        );
        assert!(s.stubs.iter().any(|x| x == "/usr/bin/dnf"));
        assert!(
            s.stubs.iter().all(|x| x.starts_with('/')),
            "stubs sit at their EL9 paths"
        );
    }
}
