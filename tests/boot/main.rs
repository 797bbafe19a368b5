//! Boot test: every host of an example booted under real systemd
//! (`pgimg lab up --boot`), installed by its own rendered kickstart or
//! user-data, then checked against the artifacts: system state, package
//! installs against `rpms.txt`, firewall calls against the ports the host's
//! services listen on, owners and modes against `overlay.list`, replication,
//! HAProxy, the DR standby, the first backup, the rendered check script, a
//! rebooted member, a killed leader. Then negative controls: a role tree
//! with a wrong `User=` and a role port missing from the firewall step must
//! make the checks fail naming host and unit.
//!
//! Needs root, `systemd-nspawn` and the base of `scripts/boot-base`
//! (scripts/install-test-deps builds it); fails, never skips, without them.
//! `PGIMG_BOOT_TEST_NET` picks the lab's bridge/namespace names (default 7).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pgimg::lab::boot::{Boot, InstallPath};

const BOOT_WAIT: Duration = Duration::from_secs(240);

fn net() -> u8 {
    std::env::var("PGIMG_BOOT_TEST_NET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn phase<T>(t0: Instant, name: &str, f: impl FnOnce() -> T) -> T {
    println!("\n=== {name}");
    let t = Instant::now();
    let v = f();
    println!(
        "=== {name}: {:.1} s (total {:.1} s)",
        t.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    v
}

/// A phase whose failure is recorded, and the test goes on.
fn soft(
    t0: Instant,
    name: &str,
    failures: &mut Vec<String>,
    f: impl FnOnce() -> Result<(), String>,
) {
    phase(t0, name, || {
        if let Err(e) = f() {
            println!("  FAIL\n{e}");
            failures.push(format!("{name}:\n{e}"));
        }
    });
}

/// Retries `f` every 500 ms until it succeeds or `timeout` passes.
fn retry<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let t = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if t.elapsed() >= timeout => {
                panic!("{what}: still failing after {} s: {e}", timeout.as_secs())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Brings a lab down whatever happens.
struct Guard(Option<Boot>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(b) = self.0.take()
            && let Err(e) = b.down()
        {
            eprintln!("boot lab down: {e}");
        }
    }
}

impl Guard {
    fn boot(&mut self) -> &mut Boot {
        self.0.as_mut().expect("lab")
    }
}

fn root(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pgimg-boot-test-{name}-{}", std::process::id()))
}

/// `pgimg lab up --boot` through the binary; the lab's state even when it fails.
fn up(spec: &Path, name: &str, roles: Option<&Path>) -> (Guard, Result<(), String>) {
    let root = root(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgimg"));
    cmd.args(["lab", "up", "--boot"])
        .arg(spec)
        .arg("--root")
        .arg(&root)
        .args(["--net", &net().to_string()]);
    if let Some(r) = roles {
        cmd.arg("--roles").arg(r);
    }
    let out = cmd.output().expect("runs pgimg");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let guard = Guard(Boot::open(&root).ok());
    let result = if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    (guard, result)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every host's `systemctl is-system-running`; failed units and their journal when not `running`.
fn system_states(b: &Boot) -> Result<(), String> {
    let mut bad = String::new();
    for h in &b.state.hosts {
        let s = b
            .system_state(&h.name, BOOT_WAIT)
            .map_err(|e| e.to_string())?;
        let units = b
            .sh(
                &h.name,
                "systemctl list-units --type=service --state=running --no-legend --plain | awk '{print $1}' | grep -v -e '^systemd-' -e '^dbus' | tr '\\n' ' '",
            )
            .unwrap_or_default();
        println!("  {:<12} {:<10} {}", h.name, s, units.trim());
        // A monitor's alert (the DR slot check before the DR site streams) is
        // not a failed boot: `timers` runs it again once the cluster converged.
        let report = b.failed_units_report_except(&h.name, pgimg::lab::boot::MONITORS);
        if !(s == "running" || s == "degraded" && report.is_empty()) || !report.is_empty() {
            bad.push_str(&format!("host {}: {s}\n{report}", h.name));
        }
    }
    if bad.is_empty() { Ok(()) } else { Err(bad) }
}

/// The stand-in's record of installed packages, less the image and the
/// install path's own tools, equals the host's rpms.txt.
fn packages(b: &Boot) -> Result<(), String> {
    let mut bad = Vec::new();
    for h in &b.state.hosts {
        let installed: BTreeSet<String> = b
            .sh(&h.name, "cat /var/lib/pgimg-standin/installed")
            .map_err(|e| e.to_string())?
            .lines()
            .filter(|p| *p != "@core" && *p != "tar")
            .map(str::to_string)
            .collect();
        let wanted: BTreeSet<String> = read(&b.out().join("hosts").join(&h.name).join("rpms.txt"))
            .lines()
            .map(str::to_string)
            .collect();
        if installed != wanted {
            bad.push(format!(
                "host {}: installed {installed:?}, rpms.txt {wanted:?}",
                h.name
            ));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// Ports opened by the recorded firewall calls (`--port=N:tcp,…` of
/// anaconda's call, `--add-port=N/tcp` of firewall-offline-cmd/firewall-cmd).
fn opened_ports(calls: &str) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for l in calls.lines().filter(|l| l.starts_with("firewall-")) {
        for w in l.split_whitespace() {
            let w = w.replace("\\,", ",");
            if let Some(v) = w.strip_prefix("--port=") {
                out.extend(
                    v.split(',')
                        .filter_map(|p| p.split(':').next()?.parse::<u16>().ok()),
                );
            } else if let Some(v) = w.strip_prefix("--add-port=") {
                out.extend(v.split('/').next().and_then(|p| p.parse::<u16>().ok()));
            }
        }
    }
    out
}

/// The per-peer rules of the recorded calls: (port, source address) of each
/// `--add-rich-rule='rule family="ipv4" source address="A/32" port
/// port="P" protocol="tcp" accept'` (firewalld.richlanguage(5)); the
/// recorder logs its arguments shell-quoted.
fn rich_rules(calls: &str) -> BTreeSet<(u16, String)> {
    let mut out = BTreeSet::new();
    for l in calls.lines().filter(|l| l.starts_with("firewall-")) {
        let plain = l.replace('\\', "");
        for rule in plain.split("--add-rich-rule=").skip(1) {
            let field = |key: &str| {
                let start = rule.find(key)? + key.len();
                let end = rule[start..].find('"')? + start;
                Some(rule[start..end].to_string())
            };
            if let (Some(a), Some(p)) = (field("address=\""), field(" port=\""))
                && let Ok(p) = p.parse::<u16>()
            {
                out.insert((p, a));
            }
        }
    }
    out
}

/// Whether a rich rule's source (`A`, `A/32` or a network `N/len`) admits `peer`.
fn admits(source: &str, peer: &str) -> bool {
    let (net, len) = source.split_once('/').unwrap_or((source, "32"));
    let (Ok(net), Ok(len), Ok(peer)) = (
        net.parse::<std::net::Ipv4Addr>(),
        len.parse::<u32>(),
        peer.parse::<std::net::Ipv4Addr>(),
    ) else {
        return source == peer;
    };
    let mask = u32::MAX.checked_shl(32 - len.min(32)).unwrap_or(0);
    u32::from(net) & mask == u32::from(peer) & mask
}

/// Every TCP port a unit of the host listens on beyond loopback must be
/// opened by the install path's firewall calls, and nothing else. With
/// per-peer rules, every connection the running cluster makes to a port
/// must come from a source its rules admit (the lab's firewall records,
/// it does not filter: a connection the rules would drop is a defect the
/// real firewall would turn into an outage), and no port is open to all.
fn firewall(b: &Boot) -> Result<(), String> {
    let mut bad = Vec::new();
    for h in &b.state.hosts {
        let calls = b
            .sh(&h.name, "cat /var/log/pgimg-standin/calls.log")
            .map_err(|e| e.to_string())?;
        let rules = rich_rules(&calls);
        let all_sources = opened_ports(&calls);
        let mut opened = all_sources.clone();
        opened.extend(rules.iter().map(|(p, _)| *p));
        // port → unit, from the listening sockets and their processes' cgroups.
        let listening = b
            .sh(
                &h.name,
                r#"ss -Htlnp | while read -r _ _ _ local _ procs; do
                     case $local in 127.*|\[::1\]*) continue;; esac
                     pid=$(printf '%s' "$procs" | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
                     unit=$(sed -n 's,^[0-9]*:name=systemd:.*/\([^/]*\.service\).*,\1,p;s,^0::.*/\([^/]*\.service\).*,\1,p' /proc/$pid/cgroup | head -1)
                     echo "${local##*:} $unit"
                   done | sort -u"#,
            )
            .map_err(|e| e.to_string())?;
        let mut units: BTreeMap<u16, String> = BTreeMap::new();
        for l in listening.lines() {
            let mut f = l.split_whitespace();
            if let (Some(p), unit) = (f.next().and_then(|p| p.parse().ok()), f.next()) {
                units.insert(p, unit.unwrap_or("?").to_string());
            }
        }
        let listen: BTreeSet<u16> = units.keys().copied().collect();
        println!("  {:<12} opened {opened:?} listening {units:?}", h.name);
        for (p, unit) in &units {
            if !opened.contains(p) {
                bad.push(format!(
                    "host {}: unit {unit} listens on {p}/tcp, which the firewall step does not open",
                    h.name
                ));
            }
        }
        for p in opened.difference(&listen) {
            bad.push(format!(
                "host {}: the firewall step opens {p}/tcp, on which nothing listens",
                h.name
            ));
        }
        if !rules.is_empty() {
            for p in &all_sources {
                bad.push(format!(
                    "host {}: the firewall step opens {p}/tcp to every source, not to its peers",
                    h.name
                ));
            }
            let established = b
                .sh(&h.name, "ss -Htn state established | awk '{print $3, $4}'")
                .map_err(|e| e.to_string())?;
            let mut seen = BTreeSet::new();
            for l in established.lines() {
                let mut f = l.split_whitespace();
                let (Some(local), Some(peer)) = (f.next(), f.next()) else {
                    continue;
                };
                let (Some((_, lp)), Some((pa, _))) =
                    (local.rsplit_once(':'), peer.rsplit_once(':'))
                else {
                    continue;
                };
                let Ok(lp) = lp.parse::<u16>() else { continue };
                let pa = pa.trim_start_matches("[::ffff:").trim_end_matches(']');
                if pa.starts_with("127.") || !units.contains_key(&lp) {
                    continue;
                }
                seen.insert((lp, pa.to_string()));
            }
            for (p, peer) in &seen {
                // A host's connection to its own address goes over `lo`, which
                // firewalld accepts before any zone's rules (firewalld/firewalld
                // src/firewall/core/nftables.py, `build_default_rules`: `iifname
                // "lo" accept` in filter_INPUT ahead of the jump to filter_INPUT_dispatch).
                if peer == &h.address {
                    continue;
                }
                if !rules.iter().any(|(rp, src)| rp == p && admits(src, peer)) {
                    let name = b
                        .state
                        .hosts
                        .iter()
                        .find(|x| &x.address == peer)
                        .map_or("not a lab host", |x| x.name.as_str());
                    bad.push(format!(
                        "host {}: unit {} on {p}/tcp takes connections from {peer} ({name}), which its firewall rules do not admit",
                        h.name, units[p]
                    ));
                }
            }
            println!(
                "  {:<12} per-peer rules {} , connections seen {}",
                h.name,
                rules.len(),
                seen.len()
            );
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// Owners and modes on disk equal overlay.list, entry by entry.
fn overlay(b: &Boot) -> Result<(), String> {
    let mut bad = Vec::new();
    for h in &b.state.hosts {
        let list = read(&b.out().join("hosts").join(&h.name).join("overlay.list"));
        let mut script = String::new();
        let mut want = Vec::new();
        for l in list.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (kind_mode, owner, path) = (f[0], f[1], f[3..].join(" "));
            let path = path.trim_end_matches('/').to_string();
            let path = if path.is_empty() { "/".into() } else { path };
            script.push_str(&format!("stat -c '%F %a %U:%G %n' '{path}' 2>&1 || true\n"));
            want.push((kind_mode.to_string(), owner.to_string(), path));
        }
        let got = b.sh(&h.name, &script).map_err(|e| e.to_string())?;
        for ((kind_mode, owner, path), line) in want.iter().zip(got.lines()) {
            let kind = if kind_mode.starts_with('d') {
                "directory"
            } else {
                "regular"
            };
            let mode = kind_mode[1..].trim_start_matches('0');
            let ok = line.starts_with(kind)
                && line
                    .split_whitespace()
                    .nth(line.split_whitespace().count() - 3)
                    == Some(mode)
                && line.contains(&format!(" {owner} "));
            if !ok {
                bad.push(format!(
                    "host {}: {path}: overlay.list says {kind_mode} {owner}, on disk: {line}",
                    h.name
                ));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// The secrets arrived by the rendered mechanism (the stand-ins' log shows
/// each kickstart host fetching its bundle, each cloud host asking SSM's
/// GetParameter with a SigV4 signature), and each file of `secrets.list` is
/// on disk with its owner and mode, so that its reader can read it.
fn secrets_delivered(b: &Boot) -> Result<(), String> {
    let requests =
        pgimg::lab::boot::standins::requests(&pgimg::lab::boot::standins::dir_of(b.root()));
    let mut bad = Vec::new();
    for h in &b.state.hosts {
        let list_path = b.out().join("hosts").join(&h.name).join("secrets.list");
        if !b.out().join("secrets").join(&h.name).is_dir() {
            continue;
        }
        let from_host = |pred: &dyn Fn(&serde_json::Value) -> bool| {
            requests
                .iter()
                .filter(|r| r["client"] == h.address.as_str() && r["status"] == 200)
                .filter(|r| pred(r))
                .count()
        };
        let (how, n) = match h.install {
            InstallPath::Kickstart => (
                "GET of its bundle over HTTPS (kickstart %post: fetch-secrets https)",
                from_host(&|r| {
                    r["method"] == "GET"
                        && r["path"]
                            .as_str()
                            .is_some_and(|p| p.ends_with(&format!("/{}.tar.gz", h.name)))
                }),
            ),
            InstallPath::CloudInit => (
                "signed SSM GetParameter (pgimg-secrets.service: fetch-secrets ssm)",
                from_host(&|r| r["target"] == "AmazonSSM.GetParameter" && r["signed"] == true),
            ),
        };
        println!("  {:<12} {n} × {how}", h.name);
        if n == 0 {
            bad.push(format!(
                "host {}: no {how} reached the stand-ins: its secrets did not come by the rendered mechanism",
                h.name
            ));
        }
        // `file PATH OWNER:GROUP MODE` then `  read by: READERS`.
        let list = read(&list_path);
        let mut lines = list.lines().peekable();
        while let Some(l) = lines.next() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 4 || f[0] != "file" {
                continue;
            }
            let readers = lines
                .peek()
                .and_then(|r| r.trim().strip_prefix("read by: "))
                .unwrap_or("?")
                .to_string();
            let got = b
                .sh(
                    &h.name,
                    &format!("stat -c '%U:%G %a' '{}' 2>&1 || true", f[1]),
                )
                .map_err(|e| e.to_string())?;
            let want = format!("{} {}", f[2], f[3].trim_start_matches('0'));
            if got.trim() != want {
                bad.push(format!(
                    "host {}: secrets file {} is `{}` on disk, secrets.list says `{} {}`: its reader cannot rely on it (read by: {readers})",
                    h.name,
                    f[1],
                    got.trim(),
                    f[2],
                    f[3]
                ));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// The service of every timer the artifacts install and enable, started
/// once as its timer would start it, succeeds (bounded): the backups, the
/// etcd upkeep, the DR slot check.
fn timers(b: &Boot) -> Result<(), String> {
    let mut bad = Vec::new();
    for h in &b.state.hosts {
        let list = read(&b.out().join("hosts").join(&h.name).join("overlay.list"));
        let ours: Vec<&str> = list
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter_map(|p| p.strip_prefix("/etc/systemd/system/"))
            .filter(|u| u.ends_with(".timer") && !u.contains('/'))
            .collect();
        let units = b
            .sh(
                &h.name,
                &format!(
                    "for t in {}; do systemctl is-enabled -q \"$t\" && systemctl show -p Unit --value \"$t\"; done; true",
                    ours.join(" ")
                ),
            )
            .map_err(|e| e.to_string())?;
        let mut ran = Vec::new();
        for unit in units.split_whitespace() {
            let out = b
                .exec(&h.name, &["timeout", "240", "systemctl", "start", unit])
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                ran.push(unit.to_string());
            } else {
                let j = b
                    .sh(
                        &h.name,
                        &format!("journalctl -u {unit} --no-pager -n 12 -o cat || true"),
                    )
                    .unwrap_or_default();
                bad.push(format!(
                    "host {}: unit {unit} failed when its timer started it; journal tail:\n    {}",
                    h.name,
                    j.trim_end().replace('\n', "\n    ")
                ));
            }
        }
        println!("  {:<12} ran {}", h.name, ran.join(" "));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

fn pg_hosts<'a>(b: &'a Boot, site: &str) -> Vec<&'a pgimg::lab::boot::HostState> {
    b.state
        .hosts
        .iter()
        .filter(|h| h.site == site && h.roles.iter().any(|r| r == "pg"))
        .collect()
}

/// Patroni's `/cluster` of a site, asked from one of its running members.
fn members(b: &Boot, site: &str) -> Result<Vec<(String, String, String)>, String> {
    for h in pg_hosts(b, site) {
        if b.leader(&h.name).is_none() {
            continue;
        }
        let Ok(out) = b.sh(
            &h.name,
            // The REST API speaks https, the host's certificate checked
            // against the cluster CA, when the spec's TLS is on.
            &format!(
                "if [ -r /etc/pgimg/tls/ca.crt ]; then \
                   curl -sf --max-time 3 --cacert /etc/pgimg/tls/ca.crt https://{0}:8008/cluster; \
                 else curl -sf --max-time 3 http://{0}:8008/cluster; fi",
                h.address
            ),
        ) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
        return Ok(v["members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or("").to_string(),
                    m["role"].as_str().unwrap_or("").to_string(),
                    m["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect());
    }
    Err(format!("site {site}: no member answers"))
}

/// One leader (or standby leader) and every other member streaming.
fn healthy(b: &Boot, site: &str, standby: bool, expect: usize) -> Result<String, String> {
    let ms = members(b, site)?;
    let leader_role = if standby { "standby_leader" } else { "leader" };
    let leaders: Vec<_> = ms.iter().filter(|m| m.1 == leader_role).collect();
    let streaming = ms
        .iter()
        .filter(|m| m.1 != leader_role && m.2 == "streaming")
        .count();
    if leaders.len() == 1 && streaming + 1 == expect && ms.len() == expect {
        Ok(leaders[0].0.clone())
    } else {
        Err(format!("site {site}: {ms:?}"))
    }
}

/// The application's login the test makes: the superuser is not reachable
/// over the network (`postgresql.superuser_remote` is off in both specs).
const APP_USER: &str = "boot_app";
const APP_PASSWORD: &str = "boot-app-password";

/// Creates the application's login on the leader, over its local socket as
/// postgres (peer), the way a DBA would.
fn create_app_user(b: &Boot, leader: &str) -> Result<String, String> {
    b.sh(
        leader,
        &format!(
            "cd / && runuser -u postgres -- /usr/pgsql-17/bin/psql -X -At -h /run/postgresql -d postgres -c \
             \"DO \\$\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_USER}') THEN \
             CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'; END IF; END \\$\\$; \
             GRANT CREATE ON SCHEMA public TO {APP_USER}\""
        ),
    )
    .map_err(|e| e.to_string())
}

/// psql as the application's login through TLS, the server's name checked
/// against the cluster CA (`verify-full`, as the spec's clients would).
fn psql(b: &Boot, host: &str, target: &str, port: u16, sql: &str) -> Result<String, String> {
    b.sh(
        host,
        &format!(
            "PGPASSWORD={APP_PASSWORD} /usr/pgsql-17/bin/psql -X -At \
             'host={target} port={port} user={APP_USER} dbname=postgres connect_timeout=5 sslmode=verify-full sslrootcert=/etc/pgimg/tls/ca.crt' -c \"{sql}\""
        ),
    )
    .map(|s| s.trim().to_string())
    .map_err(|e| e.to_string())
}

/// Runs every phase of one example; the checks that leave the cluster
/// usable add their failures to `failures` and let the later phases run.
fn run_example(t0: Instant, spec: &str, name: &str, failures: &mut Vec<String>) {
    let (mut g, result) = phase(t0, &format!("{name}: up --boot"), || {
        up(&repo(spec), name, None)
    });
    if let Err(e) = result {
        panic!("{name}: pgimg lab up --boot failed:\n{e}");
    }
    let kinds: BTreeSet<InstallPath> = g.boot().state.hosts.iter().map(|h| h.install).collect();
    println!("  install paths: {kinds:?}");
    phase(t0, &format!("{name}: every host running"), || {
        system_states(g.boot()).unwrap_or_else(|e| panic!("{e}"))
    });
    soft(
        t0,
        &format!("{name}: secrets by the rendered mechanism, owners and modes = secrets.list"),
        failures,
        || secrets_delivered(g.boot()),
    );
    soft(
        t0,
        &format!("{name}: package installs = rpms.txt"),
        failures,
        || packages(g.boot()),
    );
    let sites = g.boot().state.sites.clone();
    for s in &sites {
        let n = pg_hosts(g.boot(), &s.name).len();
        let standby = s.standby_of.is_some();
        phase(
            t0,
            &format!("{name}: site {} leader and streaming replicas", s.name),
            || {
                let l = retry(
                    &format!("site {}", s.name),
                    Duration::from_secs(180),
                    || healthy(g.boot(), &s.name, standby, n),
                );
                println!("  {} leader: {l}", if standby { "standby" } else { "" });
            },
        );
    }
    // Once the services run: what they listen on, what they created.
    soft(
        t0,
        &format!("{name}: firewall opens exactly the listening ports"),
        failures,
        || firewall(g.boot()),
    );
    soft(
        t0,
        &format!("{name}: owners and modes = overlay.list"),
        failures,
        || overlay(g.boot()),
    );
    let b = g.boot();
    for s in &sites {
        let Some(ha) = b
            .state
            .hosts
            .iter()
            .find(|h| h.site == s.name && h.roles.iter().any(|r| r == "haproxy"))
            .cloned()
        else {
            continue;
        };
        let client = pg_hosts(b, &s.name)[0].name.clone();
        phase(
            t0,
            &format!("{name}: site {} writes and reads through HAProxy", s.name),
            || {
                if s.standby_of.is_none() {
                    retry("the application's login", Duration::from_secs(60), || {
                        let leader = healthy(b, &s.name, false, pg_hosts(b, &s.name).len())?;
                        create_app_user(b, &leader)
                    });
                    retry("write through HAProxy", Duration::from_secs(60), || {
                        psql(b, &client, &ha.address, 5000,
                        "CREATE TABLE IF NOT EXISTS boot_test (v text); INSERT INTO boot_test VALUES ('boot'); SELECT pg_is_in_recovery()")
                        .and_then(|r| {
                            // psql prints every statement's tag, then the last result.
                            if r.lines().last() == Some("f") {
                                Ok(())
                            } else {
                                Err(format!("5000 reached a standby: {r}"))
                            }
                        })
                    });
                }
                retry("read through HAProxy", Duration::from_secs(60), || {
                    psql(
                        b,
                        &client,
                        &ha.address,
                        5001,
                        "SELECT count(*) > 0 FROM boot_test",
                    )
                    .and_then(|r| if r == "t" { Ok(()) } else { Err(r) })
                });
            },
        );
    }
    for s in sites.iter().filter(|s| s.standby_of.is_some()) {
        let src = s.standby_of.clone().unwrap_or_default();
        phase(
            t0,
            &format!(
                "{name}: DR site {} streams through slot {}",
                s.name, s.slot_name
            ),
            || {
                retry("the DR slot is active", Duration::from_secs(60), || {
                    let leader = healthy(b, &src, false, pg_hosts(b, &src).len())?;
                    let host = b.host(&leader).ok_or("leader")?;
                    psql(
                        b,
                        &leader,
                        &host.address,
                        5432,
                        &format!(
                            "SELECT active FROM pg_replication_slots WHERE slot_name = '{}'",
                            s.slot_name
                        ),
                    )
                    .and_then(|r| {
                        if r == "t" {
                            Ok(())
                        } else {
                            Err(format!("slot active: {r:?}"))
                        }
                    })
                });
            },
        );
    }
    {
        // The check script below asks for a healthy backup: wait for the
        // first full one. Bounded above pgBackRest's archive-timeout (300 s
        // in the rendered pgbackrest.conf), which a stuck asynchronous
        // archive-push would wait out (see post-bootstrap).
        phase(
            t0,
            &format!("{name}: stanza and first full backup, nobody running pgBackRest"),
            || {
                retry(
                    "a full backup in pgbackrest info",
                    Duration::from_secs(400),
                    || {
                        let leader =
                            healthy(b, &sites[0].name, false, pg_hosts(b, &sites[0].name).len())?;
                        let out = b
                            .sh(
                                &leader,
                                // As the backup units run it: postgres, with their EnvironmentFile.
                                "set -a; . /etc/pgbackrest/pgbackrest.env; set +a; runuser -u postgres -- pgbackrest --output=json info",
                            )
                            .map_err(|e| e.to_string())?;
                        let v: serde_json::Value =
                            serde_json::from_str(&out).map_err(|e| e.to_string())?;
                        let full = v[0]["backup"]
                            .as_array()
                            .map(|a| a.iter().any(|x| x["type"] == "full"))
                            .unwrap_or(false);
                        if full { Ok(()) } else { Err(out) }
                    },
                );
            },
        );
        soft(
            t0,
            &format!("{name}: the rendered check script passes, run as the runbook says"),
            failures,
            || {
                let leader = healthy(b, &sites[0].name, false, pg_hosts(b, &sites[0].name).len())
                    .unwrap_or_else(|e| panic!("{e}"));
                let check = b
                    .out()
                    .join("clusters")
                    .join(&b.state.cluster)
                    .join("check");
                // Copied to the host like an operator would, then `sudo -u postgres ./check`.
                let dst = b.merged(&leader).join("var/tmp/pgimg-check");
                std::fs::copy(&check, &dst).expect("copies the check script");
                let out = b
                    .exec(
                        &leader,
                        &[
                            "bash",
                            "-c",
                            "cd /var/tmp && sudo -u postgres ./pgimg-check",
                        ],
                    )
                    .expect("runs");
                let stdout = String::from_utf8_lossy(&out.stdout);
                print!("{stdout}");
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "host {leader}: the check script failed: {}{}",
                        stdout
                            .lines()
                            .filter(|l| l.starts_with("FAIL"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            },
        );
    }
    // The reference example alone runs the timers, reboots a member and
    // kills a leader: the small one would repeat them (the time budget).
    if name == "small" {
        phase(t0, &format!("{name}: down"), || {
            let b = g.0.take().expect("lab");
            b.down().unwrap_or_else(|e| panic!("down: {e}"));
        });
        return;
    }
    soft(
        t0,
        &format!("{name}: every timer's service runs and succeeds"),
        failures,
        || timers(b),
    );
    let primary = sites
        .iter()
        .find(|s| s.standby_of.is_none())
        .expect("a primary site")
        .clone();
    let n = pg_hosts(b, &primary.name).len();
    phase(t0, &format!("{name}: a rebooted member rejoins"), || {
        let ms = members(b, &primary.name).unwrap_or_else(|e| panic!("{e}"));
        let replica = ms
            .iter()
            .find(|m| m.1 != "leader")
            .expect("a replica")
            .0
            .clone();
        b.stop_host(&replica, false).expect("stops");
        b.start_host(&replica).expect("starts");
        let s = b.system_state(&replica, BOOT_WAIT).expect("state");
        assert_eq!(
            s,
            "running",
            "{replica} after reboot:\n{}",
            b.failed_units_report(&replica)
        );
        retry(
            "the rebooted member streams again",
            Duration::from_secs(120),
            || healthy(b, &primary.name, false, n),
        );
    });
    phase(
        t0,
        &format!("{name}: a killed leader container fails over"),
        || {
            let old = healthy(b, &primary.name, false, n).unwrap_or_else(|e| panic!("{e}"));
            b.stop_host(&old, true).expect("kills");
            let new = retry("a new leader", Duration::from_secs(120), || {
                let ms = members(b, &primary.name)?;
                ms.iter()
                    .find(|m| m.1 == "leader" && m.0 != old && m.2 == "running")
                    .map(|m| m.0.clone())
                    .ok_or(format!("{ms:?}"))
            });
            println!("  {old} killed; new leader {new}");
        },
    );
    phase(t0, &format!("{name}: down"), || {
        let b = g.0.take().expect("lab");
        let (bridge, hosts) = (b.state.bridge.clone(), b.state.hosts.clone());
        let root = b.root().to_path_buf();
        b.down().unwrap_or_else(|e| panic!("down: {e}"));
        assert!(
            !Path::new("/sys/class/net").join(&bridge).exists(),
            "bridge removed"
        );
        for h in hosts {
            assert!(
                !Path::new("/run/netns").join(&h.netns).exists(),
                "netns removed"
            );
            assert!(
                !Path::new("/sys/class/net").join(&h.veth).exists(),
                "veth removed"
            );
        }
        assert!(!root.exists(), "root removed");
    });
}

/// A copy of the built-in roles with each edit applied to its file.
/// A role file and the edit of its text.
type Edit<'a> = (&'a str, &'a dyn Fn(&str) -> String);

fn mutated_roles(name: &str, edits: &[Edit]) -> PathBuf {
    let dir = root(&format!("roles-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new("cp")
        .args(["-r"])
        .arg(repo("roles"))
        .arg(&dir)
        .status()
        .expect("cp");
    assert!(status.success());
    for (file, edit) in edits {
        let p = dir.join(file);
        let text = read(&p);
        let new = edit(&text);
        assert_ne!(text, new, "the mutation of {file} changes it");
        std::fs::write(&p, new).expect("writes");
    }
    dir
}

/// Each control must make the boot test fail, naming host and unit.
fn negative_controls(t0: Instant) {
    let spec = repo("examples/small.yml");
    let hosts = ["small-db1", "small-db2", "small-db3"];
    // 1. A unit running as the wrong user: etcd cannot open its data directory.
    let roles = mutated_roles(
        "neg-user",
        &[("etcd/etcd.service.hbs", &|t: &str| {
            t.replace("User=etcd", "User=postgres")
        })],
    );
    let (g, result) = phase(t0, "negative control: wrong User= in etcd.service", || {
        up(&spec, "neg-user", Some(&roles))
    });
    let err = result.expect_err("a wrong User= must keep a host from `running`");
    for h in hosts {
        assert!(
            err.contains(&format!("host {h}: unit etcd.service failed")),
            "the failure names host {h} and etcd.service:\n{err}"
        );
    }
    println!("  fails naming host and unit, as it must");
    drop(g);
    let _ = std::fs::remove_dir_all(&roles);

    // 2-4 in one cluster, each caught by its own check:
    // 2. a role port the firewall step does not open (Patroni's REST API);
    // 3. a directory missing from the overlay (etcd's snapshot directory,
    //    which no package creates);
    // 4. a secrets file its reader cannot read (fetch-secrets installs
    //    postgres's .pgpass root:root).
    let roles = mutated_roles(
        "neg-three",
        &[
            ("pg/role.yaml", &|t: &str| {
                t.lines()
                    .filter(|l| !l.contains("service: patroni-rest"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            }),
            ("etcd/role.yaml", &|t: &str| {
                t.lines()
                    .filter(|l| !l.contains("path: /var/lib/etcd-snapshots"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            }),
            ("common/fetch-secrets.sh.hbs", &|t: &str| {
                t.replace(
                    r#"install -o "$3" -g "$4" -m "$5""#,
                    r#"case $2 in */.pgpass) set -- "$1" "$2" root root "$5" ;; esac; install -o "$3" -g "$4" -m "$5""#,
                )
            }),
        ],
    );
    let (mut g, result) = phase(
        t0,
        "negative controls: a role port left closed, an overlay directory missing, a secrets file its reader cannot read",
        || up(&spec, "neg-three", Some(&roles)),
    );
    result.unwrap_or_else(|e| panic!("the cluster itself boots: {e}"));
    let b = g.boot();
    retry("site main", Duration::from_secs(180), || {
        healthy(b, "main", false, 3)
    });
    let fw = firewall(b).expect_err("a closed role port must fail the firewall check");
    for h in hosts {
        assert!(
            fw.contains(&format!(
                "host {h}: unit patroni.service listens on 8008/tcp, which the firewall step does not open"
            )),
            "{fw}"
        );
    }
    println!("  firewall: fails naming host and unit, as it must");
    let tm = timers(b).expect_err("a missing overlay directory must fail its unit");
    for h in hosts {
        assert!(
            tm.contains(&format!(
                "host {h}: unit etcd-maintenance.service failed when its timer started it"
            )),
            "{tm}"
        );
    }
    println!("  overlay directory: fails naming host and unit, as it must");
    let sc = secrets_delivered(b).expect_err("an unreadable secrets file must fail");
    for h in hosts {
        assert!(
            sc.contains(&format!(
                "host {h}: secrets file /var/lib/pgsql/.pgpass is `root:root 600` on disk, secrets.list says `postgres:postgres 0600`: its reader cannot rely on it (read by: psql run as postgres"
            )),
            "{sc}"
        );
    }
    println!("  secrets file: fails naming host and reader, as it must");
    drop(g);
    let _ = std::fs::remove_dir_all(&roles);
}

fn main() {
    let t0 = Instant::now();
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .map(|s| s
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false),
        "the boot test runs containers: run it as root"
    );
    // The firewall reader understands the recorder's shell quoting.
    let sample = r#"firewall-offline-cmd --add-rich-rule=rule\ family=\"ipv4\"\ source\ address=\"198.18.1.11/32\"\ port\ port=\"5432\"\ protocol=\"tcp\"\ accept"#;
    assert_eq!(
        rich_rules(sample),
        BTreeSet::from([(5432, "198.18.1.11/32".to_string())])
    );
    assert!(admits("198.18.1.11/32", "198.18.1.11"));
    assert!(admits("198.18.0.0/15", "198.19.0.1"));
    assert!(!admits("198.18.1.11/32", "198.18.1.12"));
    // `cargo test --test boot -- NAME…` runs only the named parts
    // (small, reference, negative); no argument runs them all.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    let mut failures = Vec::new();
    if wanted("small") {
        run_example(t0, "examples/small.yml", "small", &mut failures);
    }
    if wanted("reference") {
        run_example(
            t0,
            "examples/reference-cluster.yml",
            "reference",
            &mut failures,
        );
    }
    if wanted("negative") {
        negative_controls(t0);
    }
    let total = t0.elapsed().as_secs_f64();
    if !failures.is_empty() {
        panic!(
            "boot test: {} check(s) failed (total {total:.1} s):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    println!("\nboot test passed in {total:.1} s");
}
