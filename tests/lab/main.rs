//! End to end: the reference topology, started by `pgimg lab` from its
//! rendered artifacts, fails over, switches over, keeps acknowledged writes,
//! backs up and restores, rebuilds a replica from a backup older than the
//! primary's WAL through the archive, and follows into its DR site, which
//! backs up and archives on its own with the source's repository gone; then a negative
//! control shows the DR check really depends on the permanent slot.
//!
//! Needs the real programs (scripts/install-test-deps, then
//! `. /opt/pgimg-deps/env`); fails, never skips, without them. Run as root
//! (daemons then run as `postgres`) or as a user named `postgres`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgimg::lab::{Lab, Options, SiteState};

/// The loopback network of the test's lab (`127.<net>.…`); the binary test
/// uses the next one. `PGIMG_LAB_TEST_NET` moves both, so that two checkouts
/// can run the test side by side.
fn net() -> u8 {
    std::env::var("PGIMG_LAB_TEST_NET")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n: &u8| *n < 255)
        .unwrap_or(61)
}

/// Runs `down` whatever happens, so that no process outlives the test.
struct Guard(Option<Lab>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(lab) = self.0.take()
            && let Err(e) = lab.down()
        {
            eprintln!("lab down: {e}");
        }
    }
}

impl Guard {
    fn lab(&self) -> &Lab {
        self.0.as_ref().expect("lab")
    }
}

fn spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/reference-lab.yml")
}

fn options(name: &str) -> Options {
    Options {
        spec: spec(),
        cluster: None,
        root: Some(std::env::temp_dir().join(format!("pgimg-lab-{name}-{}", std::process::id()))),
        net: net(),
        roles: None,
    }
}

fn phase<T>(name: &str, f: impl FnOnce() -> T) -> T {
    println!("\n=== {name}");
    let t = Instant::now();
    let v = f();
    println!("=== {name}: {:.1} s", t.elapsed().as_secs_f64());
    v
}

/// Retries `f` every 300 ms until it succeeds or `timeout` passes.
fn retry<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let t = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if t.elapsed() >= timeout => {
                panic!("{what}: still failing after {} s: {e}", timeout.as_secs())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Runs a command as the lab user, killed after `timeout`; stdout, or stderr as the error.
fn run(
    lab: &Lab,
    argv: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    let mut cmd = lab.command(argv[0]);
    cmd.args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", argv[0]))?;
    if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
        let _ = w.write_all(input.as_bytes());
    }
    let t = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if t.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} timed out after {:?}", argv[0], timeout));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() && !stderr.contains("canceling wait for synchronous replication") {
        Ok(stdout)
    } else {
        Err(format!("{stderr} {stdout}"))
    }
}

fn bin(lab: &Lab, name: &str) -> String {
    lab.state.pg_bindir.join(name).display().to_string()
}

/// psql over TCP with the superuser's lab password.
fn sql(lab: &Lab, host: &str, port: u16, query: &str) -> Result<String, String> {
    sql_within(lab, host, port, query, Duration::from_secs(20))
}

fn sql_within(
    lab: &Lab,
    host: &str,
    port: u16,
    query: &str,
    timeout: Duration,
) -> Result<String, String> {
    let conn = format!("host={host} port={port} user=postgres dbname=postgres connect_timeout=3");
    let pw = lab.state.superuser_password.clone();
    run(
        lab,
        &[
            &bin(lab, "psql"),
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            &conn,
            "-c",
            query,
        ],
        &[("PGPASSWORD", &pw)],
        None,
        timeout,
    )
}

fn site<'a>(lab: &'a Lab, name: &str) -> &'a SiteState {
    lab.site(name).expect("site")
}

/// (address, write port, read port) of a site's HAProxy.
fn haproxy(lab: &Lab, s: &str) -> (String, u16, u16) {
    let h = site(lab, s).haproxy().expect("haproxy");
    let x = h.haproxy.as_ref().expect("ports");
    (h.address.clone(), x.write_port, x.read_port)
}

fn write(lab: &Lab, query: &str) -> Result<String, String> {
    let (a, w, _) = haproxy(lab, "primary");
    sql(lab, &a, w, query)
}

fn host_of_member(lab: &Lab, s: &str, member: &str) -> String {
    site(lab, s)
        .hosts
        .iter()
        .find(|h| h.member == member)
        .map(|h| h.name.clone())
        .expect("member host")
}

fn leader_host(lab: &Lab, s: &str) -> String {
    let m = retry("a leader", Duration::from_secs(60), || {
        lab.leader(site(lab, s))
    });
    host_of_member(lab, s, &m.name)
}

fn address(lab: &Lab, host: &str) -> String {
    lab.host(host).expect("host").address.clone()
}

/// kill -9 of a member's Patroni and PostgreSQL.
/// A directory made unreachable (mode 000) until dropped, also when a phase panics.
struct Unreachable {
    path: PathBuf,
    mode: u32,
}

impl Unreachable {
    fn new(path: PathBuf) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
        Unreachable { path, mode }
    }
}

impl Drop for Unreachable {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) =
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode))
        {
            eprintln!("restoring the mode of {}: {e}", self.path.display());
        }
    }
}

/// Switches the primary site's synchronous mode through `host`'s patronictl.
fn synchronous_mode(lab: &Lab, host: &str, on: bool) {
    patronictl(
        lab,
        host,
        &["edit-config", "--apply", "-", "--force", "pg_cluster"],
        Some(&format!("synchronous_mode: {on}\n")),
    )
    .unwrap_or_else(|e| panic!("edit-config: {e}"));
}

fn kill_member(lab: &Lab, host: &str) {
    let patroni = lab.running(host, "patroni").expect("patroni runs");
    let pm = lab.postmaster_pid(host).expect("postmaster runs");
    lab.signal(patroni.pid, "KILL").expect("kill patroni");
    lab.signal(pm, "KILL").expect("kill postgres");
    println!(
        "killed -9 Patroni {} and PostgreSQL {pm} of {host}",
        patroni.pid
    );
}

fn count(lab: &Lab, host: &str, port: u16, table: &str) -> Result<i64, String> {
    sql(lab, host, port, &format!("SELECT count(*) FROM {table}"))?
        .parse()
        .map_err(|e| format!("{e}"))
}

fn patronictl(lab: &Lab, host: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let cfg = lab
        .path(host, "/etc/patroni/patroni.yml")
        .display()
        .to_string();
    let ctl = lab
        .path(host, "/opt/patroni/bin/patronictl")
        .display()
        .to_string();
    let mut argv = vec![ctl.as_str(), "-c", cfg.as_str()];
    argv.extend_from_slice(args);
    // The lab's fixed secrets: the REST API's basic authentication (switchover,
    // edit-config) and Patroni's etcd login, as Patroni reads them from its environment.
    let env = [
        ("PATRONI_RESTAPI_USERNAME", "patroni"),
        ("PATRONI_RESTAPI_PASSWORD", "lab-restapi-password"),
        ("PATRONI_ETCD3_PASSWORD", "lab-etcd-password"),
        // Without another PATRONI_ETCD3_ setting Patroni ignores the password.
        ("PATRONI_ETCD3_PROTOCOL", "https"),
    ];
    run(lab, &argv, &env, stdin, Duration::from_secs(60))
}

fn pgbackrest(lab: &Lab, host: &str, args: &[&str]) -> Result<String, String> {
    pgbackrest_stanza(lab, host, "pg_cluster", args)
}

fn pgbackrest_stanza(lab: &Lab, host: &str, stanza: &str, args: &[&str]) -> Result<String, String> {
    let conf = lab
        .path(host, "/etc/pgbackrest/pgbackrest.conf")
        .display()
        .to_string();
    let exe = lab.path(host, "/usr/bin/pgbackrest").display().to_string();
    let conf_arg = format!("--config={conf}");
    let stanza_arg = format!("--stanza={stanza}");
    let mut argv = vec![exe.as_str(), conf_arg.as_str(), stanza_arg.as_str()];
    argv.extend_from_slice(args);
    // A backup the leader's first-backup callback runs holds the lock for a moment.
    let t = Instant::now();
    loop {
        match run(lab, &argv, &[], None, Duration::from_secs(180)) {
            Err(e) if e.contains("unable to acquire lock") && t.elapsed().as_secs() < 120 => {
                std::thread::sleep(Duration::from_secs(1))
            }
            r => return r,
        }
    }
}

/// The DR site's standby leader streams from the primary through the
/// permanent slot: the slot is active on the primary, and a row written on
/// the primary appears on the DR site.
fn dr_streams(lab: &Lab, token: &str, timeout: Duration) -> Result<(), String> {
    let slot = site(lab, "dr").slot_name.clone();
    let t = Instant::now();
    let left = |t: &Instant| timeout.saturating_sub(t.elapsed());
    let mut last = String::new();
    let active = loop {
        match write(
            lab,
            &format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'"),
        ) {
            Ok(a) if a == "t" => break true,
            Ok(a) => last = format!("slot {slot} on the primary: {:?}", a),
            Err(e) => last = e,
        }
        if left(&t).is_zero() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if !active {
        return Err(format!("the permanent slot is not active: {last}"));
    }
    let leader = lab.leader(site(lab, "dr"))?;
    if leader.role != "standby_leader" || leader.state != "streaming" {
        return Err(format!("DR leader is {} {}", leader.role, leader.state));
    }
    write(
        lab,
        &format!("INSERT INTO lab_rows (phase) VALUES ('{token}')"),
    )?;
    let (a, w, _) = haproxy(lab, "dr");
    loop {
        match sql(
            lab,
            &a,
            w,
            &format!("SELECT count(*) FROM lab_rows WHERE phase = '{token}'"),
        ) {
            Ok(n) if n == "1" => return Ok(()),
            Ok(n) => last = format!("{n} rows"),
            Err(e) => last = e,
        }
        if left(&t).is_zero() {
            return Err(format!("the row never reached the DR site: {last}"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Removes the `slots:` block (the DCS permanent slots) from a rendered patroni.yml.
fn remove_slots(text: &str) -> String {
    let mut out = Vec::new();
    let mut skip: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(i) = skip {
            if indent > i {
                continue;
            }
            skip = None;
        }
        if line.trim() == "slots:" {
            skip = Some(indent);
            continue;
        }
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// A restore of the stanza into a fresh directory, started on a spare loopback address.
fn restore_and_query(
    lab: &Lab,
    host: &str,
    name: &str,
    addr: &str,
    extra: &[&str],
    query: &str,
) -> String {
    let dir = lab.root().join(name);
    let sock = lab.root().join(format!("{name}-sock"));
    // A spool of its own: restore empties its stanza's spool directory, which
    // the running member's asynchronous archive-push may be writing to.
    let spool = lab.root().join(format!("{name}-spool"));
    let (d, s) = (dir.display().to_string(), sock.display().to_string());
    let sp = spool.display().to_string();
    run(
        lab,
        &["mkdir", "-m", "0700", &d, &s, &sp],
        &[],
        None,
        Duration::from_secs(5),
    )
    .expect("mkdir");
    let pg1 = format!("--pg1-path={d}");
    let spool_arg = format!("--spool-path={sp}");
    let mut args = vec![pg1.as_str(), spool_arg.as_str(), "--archive-mode=off"];
    args.extend_from_slice(extra);
    args.push("restore");
    let out = pgbackrest(lab, host, &args).expect("pgbackrest restore");
    println!("restore {name}: {}", out.lines().last().unwrap_or(""));
    let argv: Vec<String> = [
        bin(lab, "postgres"),
        "-D".into(),
        d.clone(),
        "-c".into(),
        format!("listen_addresses={addr}"),
        "-c".into(),
        "port=5432".into(),
        "-c".into(),
        format!("unix_socket_directories={s}"),
        "-c".into(),
        format!("hba_file={d}/pg_hba.conf"),
        "-c".into(),
        format!("ident_file={d}/pg_ident.conf"),
        "-c".into(),
        "archive_mode=off".into(),
        "-c".into(),
        "logging_collector=off".into(),
    ]
    .into();
    let p = lab
        .spawn(name, "postgres", &argv, &[])
        .expect("start restore");
    let psql = bin(lab, "psql");
    let result = retry(
        &format!("the restored instance {name} answers, out of recovery"),
        Duration::from_secs(90),
        || {
            let r = run(
                lab,
                &[
                    &psql,
                    "-X",
                    "-At",
                    "-h",
                    &s,
                    "-p",
                    "5432",
                    "-d",
                    "postgres",
                    "-c",
                    "SELECT pg_is_in_recovery()",
                ],
                &[],
                None,
                Duration::from_secs(10),
            )?;
            if r != "f" {
                return Err(format!("in recovery: {r}"));
            }
            run(
                lab,
                &[
                    &psql, "-X", "-At", "-h", &s, "-p", "5432", "-d", "postgres", "-c", query,
                ],
                &[],
                None,
                Duration::from_secs(10),
            )
        },
    );
    lab.stop_pid(p.pid, "INT")
        .expect("stop the restored instance");
    result
}

fn main() {
    let total = Instant::now();
    let mut expected: i64 = 0;
    let guard = Guard(Some(phase(
        "bring-up (render, start, wait healthy)",
        || {
            let lab = Lab::prepare(&options("e2e")).unwrap_or_else(|e| panic!("{e}"));
            // The guard owns the lab from here on, also if start fails.
            lab
        },
    )));
    phase("start", || {
        guard.lab().start().unwrap_or_else(|e| panic!("{e}"))
    });
    let lab = guard.lab();
    println!("{}", lab.status_text());

    phase(
        "replication: a leader, two streaming replicas, write and read through HAProxy",
        || {
            let h = lab.site_health(site(lab, "primary")).expect("healthy");
            println!("members: {h}");
            let leader = leader_host(lab, "primary");
            write(
                lab,
                "CREATE TABLE lab_rows (id bigserial PRIMARY KEY, phase text NOT NULL)",
            )
            .expect("create");
            let served_by = write(
            lab,
            "INSERT INTO lab_rows (phase) VALUES ('replication'); SELECT host(inet_server_addr())",
        )
        .expect("write through the write port");
            expected += 1;
            assert_eq!(
                served_by,
                address(lab, &leader),
                "the write port leads to the leader"
            );
            let (a, _, r) = haproxy(lab, "primary");
            let row = retry(
                "a replica serves the row through the read port",
                Duration::from_secs(10),
                || {
                    let out = sql(
                        lab,
                        &a,
                        r,
                        "SELECT pg_is_in_recovery(), host(inet_server_addr()), count(*) FROM lab_rows",
                    )?;
                    if out.starts_with("t|") && out.ends_with("|1") {
                        Ok(out)
                    } else {
                        Err(out)
                    }
                },
            );
            println!("read port: {row} (leader {})", address(lab, &leader));
        },
    );

    phase("the rendered check script passes against the lab", || {
        let leader = leader_host(lab, "primary");
        retry(
            "the first backup (leader's callback)",
            Duration::from_secs(120),
            || {
                let out = pgbackrest(lab, &leader, &["--output=json", "info"])?;
                if out.contains("\"backup\":[{") {
                    Ok(())
                } else {
                    Err(out)
                }
            },
        );
        let check = lab.root().join("cluster/check").display().to_string();
        let pw = lab.state.superuser_password.clone();
        let out = run(
            lab,
            &[&check],
            &[("PGPASSWORD", &pw)],
            None,
            Duration::from_secs(120),
        )
        .unwrap_or_else(|e| panic!("check failed:\n{e}"));
        println!("{out}");
    });

    phase(
        "failover: kill -9 of the leader's Patroni and PostgreSQL",
        || {
            let old = leader_host(lab, "primary");
            kill_member(lab, &old);
            let t = Instant::now();
            let by = retry(
                "a write through the write port after the failover",
                Duration::from_secs(120),
                || {
                    write(
                        lab,
                        "INSERT INTO lab_rows (phase) VALUES ('failover'); SELECT host(inet_server_addr())",
                    )
                },
            );
            expected += 1;
            println!(
                "writes again after {:.1} s, on {by}",
                t.elapsed().as_secs_f64()
            );
            assert_ne!(by, address(lab, &old));
            lab.start_patroni(&old).expect("restart Patroni");
            lab.wait_site("primary", Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("{e}"));
            let n = retry(
                "the old leader has every row",
                Duration::from_secs(30),
                || match count(lab, &address(lab, &old), 5432, "lab_rows")? {
                    n if n == expected => Ok(n),
                    n => Err(format!("{n} of {expected}")),
                },
            );
            let log = std::fs::read_to_string(lab.log_file(&old, "patroni")).unwrap_or_default();
            println!(
                "{old} rejoined as a replica with {n} rows; pg_rewind ran: {}",
                log.contains("pg_rewind")
            );
        },
    );

    phase("switchover with patronictl", || {
        let old = leader_host(lab, "primary");
        let members = lab.members(site(lab, "primary")).expect("members");
        let cand = members
            .iter()
            .find(|m| m.role != "leader" && m.state == "streaming")
            .expect("candidate")
            .name
            .clone();
        let old_member = lab.host(&old).expect("host").member.clone();
        let out = patronictl(
            lab,
            &old,
            &[
                "switchover",
                "--leader",
                &old_member,
                "--candidate",
                &cand,
                "--force",
                "pg_cluster",
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("switchover: {e}"));
        println!("{}", out.lines().last().unwrap_or(""));
        retry("the candidate leads", Duration::from_secs(60), || {
            let l = lab.leader(site(lab, "primary"))?;
            if l.name == cand { Ok(()) } else { Err(l.name) }
        });
        // Clients may see one read-only error while HAProxy catches up: retry.
        retry(
            "a write after the switchover",
            Duration::from_secs(30),
            || write(lab, "INSERT INTO lab_rows (phase) VALUES ('switchover')"),
        );
        expected += 1;
        lab.wait_site("primary", Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("{e}"));
        let (a, w, _) = haproxy(lab, "primary");
        assert_eq!(
            count(lab, &a, w, "lab_rows").expect("count"),
            expected,
            "no row lost"
        );
    });

    phase(
        "synchronous mode: acknowledged commits survive a leader kill",
        || {
            let any = leader_host(lab, "primary");
            synchronous_mode(lab, &any, true);
            retry("a synchronous standby", Duration::from_secs(60), || {
                let ms = lab.members(site(lab, "primary"))?;
                if ms
                    .iter()
                    .any(|m| m.role == "sync_standby" && m.state == "streaming")
                {
                    Ok(())
                } else {
                    Err(format!("{ms:?}"))
                }
            });
            write(lab, "CREATE TABLE sync_rows (v int PRIMARY KEY)").expect("create");
            let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let old = leader_host(lab, "primary");
            let after_kill = std::thread::scope(|sc| {
                let (acked2, stop2) = (acked.clone(), stop.clone());
                sc.spawn(move || {
                    let mut i = 0i64;
                    while !stop2.load(Ordering::SeqCst) {
                        i += 1;
                        if write(lab, &format!("INSERT INTO sync_rows VALUES ({i})")).is_ok() {
                            acked2.lock().expect("lock").push(i);
                        }
                    }
                });
                std::thread::sleep(Duration::from_secs(2));
                let before = acked.lock().expect("lock").len();
                kill_member(lab, &old);
                let t = Instant::now();
                retry(
                    "commits acknowledged by a new leader",
                    Duration::from_secs(120),
                    || {
                        let n = acked.lock().map_err(|e| e.to_string())?.len();
                        let l = lab.leader(site(lab, "primary"))?;
                        if n >= before + 20 && l.name != old {
                            Ok(())
                        } else {
                            Err(format!("{n} acks, leader {}", l.name))
                        }
                    },
                );
                stop.store(true, Ordering::SeqCst);
                (before, t.elapsed())
            });
            let acked = acked.lock().expect("lock").clone();
            println!(
                "{} commits acknowledged ({} before the kill); new leader writing after {:.1} s",
                acked.len(),
                after_kill.0,
                after_kill.1.as_secs_f64()
            );
            let list = acked
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let present = write(
                lab,
                &format!("SELECT count(*) FROM sync_rows WHERE v IN ({list})"),
            )
            .expect("count");
            assert_eq!(
                present,
                acked.len().to_string(),
                "every acknowledged commit is present"
            );
            lab.start_patroni(&old).expect("restart Patroni");
            lab.wait_site("primary", Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("{e}"));
            let (a, w, _) = haproxy(lab, "primary");
            assert_eq!(
                count(lab, &a, w, "lab_rows").expect("count"),
                expected,
                "no row lost"
            );
            // Later phases kill replicas on purpose; with a synchronous standby
            // killed, every commit would wait for Patroni to name another one.
            synchronous_mode(lab, &old, false);
            retry("no synchronous standby", Duration::from_secs(60), || {
                let ms = lab.members(site(lab, "primary"))?;
                if ms.iter().any(|m| m.role == "sync_standby") {
                    Err(format!("{ms:?}"))
                } else {
                    Ok(())
                }
            });
        },
    );

    phase(
        "pgBackRest: stanza, full backup, archiving, restore, point-in-time restore",
        || {
            let leader = leader_host(lab, "primary");
            pgbackrest(lab, &leader, &["stanza-create"])
                .unwrap_or_else(|e| panic!("stanza-create: {e}"));
            pgbackrest(lab, &leader, &["check"]).unwrap_or_else(|e| panic!("check: {e}"));
            let archiver = || {
                write(
                    lab,
                    "SELECT archived_count, failed_count FROM pg_stat_archiver",
                )
                .expect("archiver")
            };
            let before = archiver();
            for _ in 0..3 {
                write(lab, "INSERT INTO lab_rows (phase) VALUES ('backup')").expect("insert");
                expected += 1;
            }
            pgbackrest(lab, &leader, &["--type=full", "backup"])
                .unwrap_or_else(|e| panic!("backup: {e}"));
            write(lab, "SELECT pg_switch_wal()").expect("switch");
            pgbackrest(lab, &leader, &["check"]).unwrap_or_else(|e| panic!("check: {e}"));
            let after = archiver();
            println!("pg_stat_archiver (archived|failed): before {before}, after {after}");
            let failed = |s: &str| s.split('|').nth(1).unwrap_or("").to_string();
            let archived = |s: &str| {
                s.split('|')
                    .next()
                    .unwrap_or("0")
                    .parse::<i64>()
                    .unwrap_or(0)
            };
            assert_eq!(failed(&before), failed(&after), "no failed archive");
            assert!(archived(&after) > archived(&before), "WAL is archived");
            let n = restore_and_query(
                lab,
                &leader,
                "restore",
                &format!("127.{}.250.2", net()),
                &[],
                "SELECT count(*) FROM lab_rows",
            );
            assert_eq!(n, expected.to_string(), "the restore has every row");
            write(
                lab,
                "CREATE TABLE pitr_t AS SELECT g FROM generate_series(1, 100) g",
            )
            .expect("create");
            let lsn = write(lab, "SELECT pg_current_wal_insert_lsn()").expect("lsn");
            write(lab, "DROP TABLE pitr_t").expect("drop");
            write(lab, "SELECT pg_switch_wal()").expect("switch");
            pgbackrest(lab, &leader, &["check"]).unwrap_or_else(|e| panic!("check: {e}"));
            let target = format!("--target={lsn}");
            let n = restore_and_query(
                lab,
                &leader,
                "pitr",
                &format!("127.{}.250.3", net()),
                &["--type=lsn", &target, "--target-action=promote"],
                "SELECT count(*) FROM pitr_t",
            );
            assert_eq!(
                n, "100",
                "the point-in-time restore brings the dropped table back"
            );
            println!("restored to {lsn}, before DROP TABLE: pitr_t has {n} rows");
        },
    );

    phase(
        "archive recovery: a replica rebuilt from a backup older than the primary's WAL catches up",
        || {
            let leader = leader_host(lab, "primary");
            let replica = site(lab, "primary")
                .pg_hosts()
                .map(|h| h.name.clone())
                .find(|h| *h != leader)
                .expect("a replica");
            // The newest backup (the phase before) predates everything below.
            let needed = write(lab, "SELECT pg_walfile_name(pg_current_wal_lsn())").expect("lsn");
            kill_member(lab, &replica);
            let t = Instant::now();
            // A burst of WAL larger than wal_keep_size (256MB): about 400 MB, which
            // a loaded two-core machine may take well over psql's usual bound to write.
            let (a, w, _) = haproxy(lab, "primary");
            sql_within(
                lab,
                &a,
                w,
                "CREATE TABLE burst AS SELECT g, repeat('x', 900) AS pad FROM generate_series(1, 400000) g",
                Duration::from_secs(180),
            )
            .expect("burst");
            // The replica's slot would keep that WAL on the primary: drop it (Patroni
            // recreates it at the current position), then let checkpoints recycle.
            let slot = site(lab, "primary")
                .pg_hosts()
                .find(|h| h.name == replica)
                .map(|h| h.member.clone())
                .expect("the replica's member");
            let _ = write(
                lab,
                &format!(
                    "SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active"
                ),
            );
            for _ in 0..3 {
                write(lab, "SELECT pg_switch_wal(); CHECKPOINT").expect("checkpoint");
            }
            let oldest = write(
                lab,
                "SELECT min(name) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$' \
                 AND left(name, 8) = left(pg_walfile_name(pg_current_wal_lsn()), 8)",
            )
            .expect("oldest WAL");
            println!("the replica needs WAL from {needed}; the primary keeps WAL from {oldest} on");
            assert!(
                oldest.as_str() > needed.as_str(),
                "the primary still has the WAL the replica needs; the proof would prove nothing"
            );
            let data = lab.path(&replica, "/var/lib/pgsql/17/data");
            for entry in std::fs::read_dir(&data).expect("data dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path).expect("remove");
                } else {
                    std::fs::remove_file(&path).expect("remove");
                }
            }
            lab.start_patroni(&replica).expect("restart Patroni");
            let rows = retry(
                "the rebuilt replica has the burst",
                Duration::from_secs(300),
                || match count(lab, &address(lab, &replica), 5432, "burst")? {
                    400000 => Ok(400000),
                    n => Err(format!("{n} rows")),
                },
            );
            lab.wait_site("primary", Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("{e}"));
            let log =
                std::fs::read_to_string(lab.log_file(&replica, "patroni")).unwrap_or_default();
            println!(
                "{replica} restored by pgBackRest and caught up through restore_command ({rows} rows) in {:.1} s; archive-get in its log: {}",
                t.elapsed().as_secs_f64(),
                log.contains("archive-get")
            );
            write(lab, "DROP TABLE burst").expect("drop");
        },
    );

    phase(
        "DR: the standby leader streams through the permanent slot; promotion",
        || {
            dr_streams(lab, "dr", Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
            let dr = site(lab, "dr");
            let host = dr.pg_hosts().next().expect("dr host").name.clone();
            // The outage DR exists for: the source's repository is unreachable.
            let source_repo = std::fs::canonicalize(
                lab.path(&leader_host(lab, "primary"), "/var/lib/pgbackrest"),
            )
            .expect("the source's repository");
            let unreachable = Unreachable::new(source_repo);
            let promoted_at = Instant::now();
            patronictl(
                lab,
                &host,
                &["edit-config", "--apply", "-", "--force", "dr_cluster"],
                Some("standby_cluster: null\n"),
            )
            .unwrap_or_else(|e| panic!("promote: {e}"));
            let (a, w, _) = haproxy(lab, "dr");
            let on = retry(
                "a write on the promoted DR site",
                Duration::from_secs(60),
                || {
                    sql(
                        lab,
                        &a,
                        w,
                        "INSERT INTO lab_rows (phase) VALUES ('promoted'); SELECT host(inet_server_addr())",
                    )
                },
            );
            let l = lab.leader(dr).expect("dr leader");
            assert_eq!(l.role, "leader");
            println!(
                "the DR site accepts writes on {on} ({} is {})",
                l.name, l.role
            );
            // It backs up and archives into its own repository by itself.
            let dr_leader = host_of_member(lab, "dr", &l.name);
            let backups = retry(
                "the promoted DR site's first backup, in its own repository",
                Duration::from_secs(300),
                || {
                    let out = pgbackrest_stanza(
                        lab,
                        &dr_leader,
                        "dr_cluster",
                        &["--output=json", "info"],
                    )?;
                    match out.matches("\"label\"").count() {
                        0 => Err("no backup yet".to_string()),
                        n => Ok(n),
                    }
                },
            );
            let first_backup = promoted_at.elapsed().as_secs_f64();
            let (a, w, _) = haproxy(lab, "dr");
            sql(lab, &a, w, "SELECT pg_switch_wal()").expect("switch");
            pgbackrest_stanza(lab, &dr_leader, "dr_cluster", &["check"])
                .unwrap_or_else(|e| panic!("the promoted DR site does not archive: {e}"));
            drop(unreachable);
            println!(
                "with the source's repository unreachable, the promoted DR site took its first backup ({backups}) {first_backup:.1} s after promotion and archives (pgbackrest check) at {:.1} s",
                promoted_at.elapsed().as_secs_f64()
            );
        },
    );
    drop(guard);

    phase(
        "negative control: without the permanent slot, the DR check fails",
        || {
            let lab = Lab::prepare(&options("noslot")).unwrap_or_else(|e| panic!("{e}"));
            let guard = Guard(Some(lab));
            let lab = guard.lab();
            let mut removed = 0;
            for h in site(lab, "primary").pg_hosts() {
                let f = lab.path(&h.name, "/etc/patroni/patroni.yml");
                let text = std::fs::read_to_string(&f).expect("read");
                let edited = remove_slots(&text);
                if edited != text {
                    removed += 1;
                    std::fs::write(&f, edited).expect("write");
                }
            }
            assert_eq!(
                removed, 3,
                "the slot was in every primary member's patroni.yml"
            );
            lab.start_etcd_all().unwrap_or_else(|e| panic!("{e}"));
            lab.start_site("primary").unwrap_or_else(|e| panic!("{e}"));
            lab.wait_site("primary", Duration::from_secs(240))
                .unwrap_or_else(|e| panic!("{e}"));
            write(
                lab,
                "CREATE TABLE lab_rows (id bigserial PRIMARY KEY, phase text NOT NULL)",
            )
            .expect("create");
            lab.start_site("dr").unwrap_or_else(|e| panic!("{e}"));
            match dr_streams(lab, "noslot", Duration::from_secs(30)) {
                Ok(()) => panic!(
                    "the DR check passed without the permanent slot: it does not check the slot"
                ),
                Err(e) => println!("DR check failed as it must: {e}"),
            }
        },
    );
    phase(
        "pgimg lab up, status and down on examples/reference-cluster.yml",
        reference_example_up_and_down,
    );
    println!(
        "\nlab end-to-end: all phases passed in {:.1} s",
        total.elapsed().as_secs_f64()
    );
}

/// Runs the pgimg binary with a bounded wait; its output is echoed.
fn pgimg(args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgimg"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting pgimg: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "pgimg {} did not finish in {timeout:?}",
                    args.join(" ")
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(format!("waiting for pgimg: {e}")),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{text}");
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "pgimg {} failed ({}): {text}",
            args.join(" "),
            out.status
        ))
    }
}

/// Pids of the processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            found.push(name);
        }
    }
    found
}

/// The bundled example as a user runs it: `up` brings up a healthy cluster
/// (its S3 repositories stand in for local ones), `status` lists the
/// members, `down` leaves no process and no file behind.
fn reference_example_up_and_down() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reference-cluster.yml");
    let root = std::env::temp_dir().join(format!("pgimg-lab-reference-{}", std::process::id()));
    let (spec, root_s) = (
        spec.to_string_lossy().into_owned(),
        root.to_string_lossy().into_owned(),
    );
    let args = |action: &'static str| -> Vec<String> {
        vec![
            "lab".into(),
            action.into(),
            spec.clone(),
            "--root".into(),
            root_s.clone(),
            "--net".into(),
            (net() + 1).to_string(),
        ]
    };
    let call = |action: &'static str, timeout: Duration| {
        let a = args(action);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        pgimg(&a, timeout)
    };
    let up = call("up", Duration::from_secs(300));
    let status = up
        .as_ref()
        .ok()
        .map(|_| call("status", Duration::from_secs(60)));
    // Down runs whatever happened above, so that nothing outlives the test.
    let down = call("down", Duration::from_secs(180));
    let up = up.unwrap_or_else(|e| panic!("{e}"));
    let status = status
        .expect("status ran")
        .unwrap_or_else(|e| panic!("{e}"));
    down.unwrap_or_else(|e| panic!("{e}"));
    assert!(!up.is_empty(), "lab up printed nothing");
    assert!(
        status.contains(" Leader "),
        "status shows a leader: {status}"
    );
    assert!(
        status.contains(" Standby Leader "),
        "status shows the DR standby leader: {status}"
    );
    assert!(
        !status.contains("UNHEALTHY"),
        "every etcd is healthy: {status}"
    );
    assert!(!root.exists(), "lab down left {} behind", root.display());
    let left = processes_mentioning(&root_s);
    assert!(left.is_empty(), "lab down left processes behind: {left:?}");
}
