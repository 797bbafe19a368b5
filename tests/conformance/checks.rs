//! One function per consumer: it runs the real program on one artifact and
//! returns the program's own message when the artifact is rejected. The
//! suite and the negative controls call the same functions.
//!
//! Several consumers exit 0 on problems they only warn about, so every check
//! reads the output, not only the exit status.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tools::{self, Guard, RUN_TIMEOUT, run, tool};

fn read(p: &Path) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))
}

fn write(p: &Path, text: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    std::fs::write(p, text).map_err(|e| format!("writing {}: {e}", p.display()))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- addresses

/// Every IP address written in `text` that is neither loopback nor
/// unspecified. Networks in CIDR form (`10.0.0.0/8`, `::/0`, pg_hba rows)
/// are skipped: nothing connects to a network.
pub fn non_loopback_addresses(text: &str) -> Vec<String> {
    let is_addr_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_addr_char(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_addr_char(chars[i]) {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let cidr = chars.get(i) == Some(&'/') && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        let Some(ip) = parse_ip_run(&run) else {
            continue;
        };
        if cidr {
            continue;
        }
        let harmless = match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
        };
        if !harmless {
            out.push(ip.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// An address in a run of address characters: `a.b.c.d`, `a.b.c.d:port`, or an IPv6 address.
fn parse_ip_run(run: &str) -> Option<IpAddr> {
    let run = run.trim_matches(|c| c == ':' || c == '.');
    if let Ok(v4) = run.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    if let Some((a, port)) = run.rsplit_once(':')
        && port.chars().all(|c| c.is_ascii_digit())
        && let Ok(v4) = a.parse::<Ipv4Addr>()
    {
        return Some(IpAddr::V4(v4));
    }
    if run.matches(':').count() >= 2
        && let Ok(v6) = run.parse::<Ipv6Addr>()
    {
        return Some(IpAddr::V6(v6));
    }
    None
}

/// A `host:port`, `[v6]:port` or URL whose host is a loopback IP literal.
/// A host name would be resolved, which may send a DNS query off the machine.
pub fn require_loopback_literal(what: &str, endpoint: &str) -> Result<(), String> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or_default();
    let host = match rest.strip_prefix('[') {
        Some(r) => r.split(']').next().unwrap_or_default(),
        None => rest.rsplit_once(':').map_or(rest, |(h, _)| h),
    };
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(()),
        _ => Err(format!(
            "refusing to start {what}: `{endpoint}` is not a loopback IP address"
        )),
    }
}

fn refuse_non_loopback(what: &str, text: &str) -> Result<(), String> {
    let bad = non_loopback_addresses(text);
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "refusing to start {what}: the copy still names non-loopback addresses {}; build it with a loopback mapping",
            bad.join(", ")
        ))
    }
}

// ---------------------------------------------------------------- kickstart

/// `ksvalidator -v RHEL9`, then `bash -n` on every `%pre`/`%post` body, which
/// ksvalidator does not parse. Neither checks package names or repository URLs.
pub fn kickstart(file: &Path, work: &Path) -> Result<(), String> {
    // ksvalidator fetches what `%include` names: only local files may be checked.
    for (n, l) in read(file)?.lines().enumerate() {
        let t = l.trim_start();
        if (t.starts_with("%include") || t.starts_with("%ksappend")) && t.contains("://") {
            return Err(format!(
                "line {}: refusing to validate: ksvalidator would fetch {t}",
                n + 1
            ));
        }
    }
    let tmp = work.join("ksvalidator-tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let out = run(
        Command::new(tool("ksvalidator")?)
            .args(["-v", "RHEL9"])
            .arg(file)
            // It leaves a temporary file per run: keep them in the test's own directory.
            .env("TMPDIR", &tmp),
        RUN_TIMEOUT,
    )?;
    let noise = |l: &str| l.trim().is_empty() || l.starts_with("Checking kickstart file");
    if !out.success() || !out.text().lines().all(noise) {
        return Err(format!("ksvalidator -v RHEL9 rejected it {}", out.report()));
    }
    let text = read(file)?;
    let mut errors = Vec::new();
    for (n, s) in script_sections(&text).into_iter().enumerate() {
        if !s.shell {
            continue;
        }
        let script = work.join(format!("section-{n}.sh"));
        write(&script, &s.body)?;
        let out = run(
            Command::new(tool("bash")?).arg("-n").arg(&script),
            RUN_TIMEOUT,
        )?;
        if !out.success() || !out.text().is_empty() {
            errors.push(format!(
                "bash -n rejected `{}` (line {}; bash counts from the line after it) {}",
                s.header,
                s.line,
                out.report()
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

struct Section {
    line: usize,
    header: String,
    body: String,
    shell: bool,
}

/// The `%pre`/`%post` sections of a kickstart: header line, body, and whether bash runs it.
fn script_sections(ks: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut current: Option<Section> = None;
    for (i, line) in ks.lines().enumerate() {
        let t = line.trim();
        if let Some(s) = current.as_mut() {
            if t == "%end" {
                out.extend(current.take());
            } else {
                s.body.push_str(line);
                s.body.push('\n');
            }
            continue;
        }
        let word = t.split_whitespace().next().unwrap_or("");
        if matches!(word, "%pre" | "%post" | "%pre-install") {
            let args: Vec<&str> = t.split_whitespace().collect();
            let mut interp = None;
            for (j, a) in args.iter().enumerate() {
                if let Some(v) = a.strip_prefix("--interpreter=") {
                    interp = Some(v.to_string());
                } else if *a == "--interpreter" {
                    interp = args.get(j + 1).map(|s| s.to_string());
                }
            }
            let shell = interp.is_none_or(|p| {
                let base = p.rsplit('/').next().unwrap_or("").to_string();
                base == "bash" || base == "sh"
            });
            current = Some(Section {
                line: i + 1,
                header: t.to_string(),
                body: String::new(),
                shell,
            });
        }
    }
    out.extend(current);
    out
}

// ---------------------------------------------------------------- cloud-init

/// The `#cloud-config` document of a user-data file: gunzipped if it is
/// gzip, the `text/cloud-config` part if it is MIME multipart.
pub fn cloud_config_of(bytes: &[u8]) -> Result<String, String> {
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out)
            .map_err(|e| format!("user-data is gzip but does not decompress: {e}"))?;
        out
    } else {
        bytes.to_vec()
    };
    let text = String::from_utf8(bytes).map_err(|_| "user-data is not UTF-8 text".to_string())?;
    if text.starts_with("#cloud-config") {
        return Ok(text);
    }
    let head = text
        .lines()
        .take(5)
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_lowercase();
    if head.contains("content-type: multipart") || head.starts_with("mime-version:") {
        let part = mime_part(&text, "text/cloud-config")?;
        if part.starts_with("#cloud-config") {
            return Ok(part);
        }
        return Err("the text/cloud-config part does not start with `#cloud-config`".into());
    }
    Err(format!(
        "user-data starts with {:?}: cloud-init reads it as cloud-config only when it starts with `#cloud-config` (or is gzip / MIME multipart around one)",
        text.lines().next().unwrap_or("")
    ))
}

fn mime_part(text: &str, want: &str) -> Result<String, String> {
    let (headers, body) = split_headers(text);
    let boundary = header(&headers, "content-type")
        .and_then(|ct| {
            ct.split(';')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("boundary="))
                .map(|b| b.trim_matches('"').to_string())
        })
        .ok_or("MIME user-data without a boundary")?;
    let delim = format!("--{boundary}");
    let mut found = Vec::new();
    for part in body.split(&delim).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.trim_start_matches(['\r', '\n']);
        let (h, b) = split_headers(part);
        let ct = header(&h, "content-type").unwrap_or_default();
        if ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case(want)
        {
            let b = b.trim_end_matches(['\r', '\n']);
            let b = match header(&h, "content-transfer-encoding") {
                Some(enc) if enc.eq_ignore_ascii_case("base64") => {
                    String::from_utf8(base64_decode(b)?).map_err(|_| "part is not UTF-8")?
                }
                _ => format!("{b}\n"),
            };
            found.push(b);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("MIME user-data has no {want} part")),
        n => Err(format!("MIME user-data has {n} {want} parts; expected one")),
    }
}

fn split_headers(text: &str) -> (Vec<(String, String)>, String) {
    let mut headers = Vec::new();
    let mut lines = text.split_inclusive('\n');
    for line in lines.by_ref() {
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (headers, lines.collect())
}

fn header(h: &[(String, String)], name: &str) -> Option<String> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid base64 character {:?}", c as char)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// Top-level keys cloud-init 22.4's schema knows, plus base-config keys
/// that no module schema describes.
fn cloud_config_keys() -> Result<&'static BTreeSet<String>, String> {
    static KEYS: OnceLock<Result<BTreeSet<String>, String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let py = tools::interpreter_of(&tool("cloud-init")?)?;
        let script = r##"
import json
from cloudinit.config.schema import get_schema
s = get_schema()
keys = set(s.get("properties", {}))
for ref in s.get("allOf", []):
    r = ref.get("$ref", "")
    if r.startswith("#/$defs/"):
        keys |= set(s["$defs"][r[len("#/$defs/"):]].get("properties", {}))
print(json.dumps(sorted(keys)))
"##;
        let out = run(Command::new(py).args(["-c", script]), RUN_TIMEOUT)?;
        if !out.success() {
            return Err(format!("reading cloud-init's schema {}", out.report()));
        }
        let mut keys: BTreeSet<String> =
            serde_json::from_str(out.stdout.trim()).map_err(|e| e.to_string())?;
        for k in [
            "merge_how",
            "merge_type",
            "system_info",
            "datasource",
            "datasource_list",
            "output",
            "manual_cache_clean",
        ] {
            keys.insert(k.to_string());
        }
        Ok(keys)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// `cloud-init schema --config-file` on the cloud-config of a user-data file.
/// cloud-init does not report unknown top-level keys, so they are compared
/// with its schema here; deprecated keys are failures too (accepted today,
/// dropped by a later cloud-init). Returns the cloud-config text.
pub fn user_data(file: &Path, work: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let cfg = cloud_config_of(&bytes)?;
    let plain = work.join("cloud-config.yaml");
    write(&plain, &cfg)?;
    let out = run(
        Command::new(tool("cloud-init")?)
            .args(["schema", "--config-file"])
            .arg(&plain),
        RUN_TIMEOUT,
    )?;
    let expected_line = |l: &str| {
        let l = l.trim();
        l.is_empty()
            || l.starts_with("Valid cloud-config:")
            || l == "Cloud config schema deprecations:"
    };
    if !out.success() || !out.text().lines().all(expected_line) {
        return Err(format!("cloud-init schema rejected it {}", out.report()));
    }
    let doc = yaml12(&cfg).map_err(|e| format!("pgimg's YAML reader: {e}"))?;
    let Value::Object(map) = doc else {
        return Err("the cloud-config is not a mapping".into());
    };
    let known = cloud_config_keys()?;
    let unknown: Vec<&String> = map.keys().filter(|k| !known.contains(*k)).collect();
    if !unknown.is_empty() {
        return Err(format!(
            "top-level keys cloud-init's schema does not know (cloud-init would ignore them silently): {}",
            unknown
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(cfg)
}

// ---------------------------------------------------------------- haproxy

/// `haproxy -dW -c -f` (plus `pgimg-process.cfg` beside it): without `-dW` warnings exit 0. Every `server` must
/// name an IP address, or the check would resolve it through DNS.
pub fn haproxy(file: &Path) -> Result<(), String> {
    let text = read(file)?;
    for (i, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"server") {
            let target = words.get(2).copied().unwrap_or("");
            let host = match target.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or(""),
                None => target.rsplit_once(':').map_or(target, |(h, _)| h),
            };
            if host.parse::<IpAddr>().is_err() {
                return Err(format!(
                    "line {}: server address `{target}` is not an IP address; checking it would query DNS",
                    i + 1
                ));
            }
        }
    }
    // The process settings (user, group, chroot, stats socket) live next to
    // haproxy.cfg, and haproxy.service loads both: check them together.
    // The stats password haproxy.cfg expands, as haproxy.service's environment file gives it.
    let mut cmd = Command::new(tool("haproxy")?);
    cmd.env("PGIMG_STATS_PASSWORD", "conformance-stats-password")
        .args(["-dW", "-c", "-f"])
        .arg(file);
    let process = file.with_file_name("pgimg-process.cfg");
    if process.exists() {
        cmd.arg("-f").arg(&process);
    }
    let out = run(&mut cmd, RUN_TIMEOUT)?;
    let t = out.text();
    if !out.success() || t.contains("[WARNING]") || t.contains("[ALERT]") {
        return Err(format!("haproxy -dW -c rejected it {}", out.report()));
    }
    Ok(())
}

// ---------------------------------------------------------------- patroni

/// `patroni --validate-config` on a copy of a loopback-mapped patroni.yml,
/// with `bin_dir` at real PostgreSQL 17 binaries and `data_dir` in `work`.
///
/// What it checks: the schema of Patroni 4.1 (required keys, types, ranges
/// such as `ttl` >= 20, enums), that the REST API and PostgreSQL listen
/// addresses are free to bind, that connect addresses are not 127.0.0.1 or
/// a wildcard, that the etcd hosts accept a TCP connection, that `bin_dir`
/// holds the PostgreSQL binaries, that `data_dir` is usable.
///
/// What it cannot check: unknown or misspelled keys are ignored silently;
/// PostgreSQL `parameters` and `pg_hba` rows are not parsed (PostgreSQL
/// reads them at start); the etcd hosts are stand-in listeners here, so
/// the DCS protocol, the namespace and the etcd cluster itself are not
/// exercised; passwords (from `PATRONI_*` variables), callbacks and
/// replica-method commands are not looked at.
pub fn patroni(file: &Path, work: &Path) -> Result<(), String> {
    let text = read(file)?;
    let bindir = tools::pg_bindir()?;
    let data = work.join("data");
    let copy: String = text
        .lines()
        .map(|l| {
            let key = l.trim_start();
            let pad = &l[..l.len() - key.len()];
            if key.starts_with("bin_dir:") {
                format!("{pad}bin_dir: '{}'\n", bindir.display())
            } else if key.starts_with("data_dir:") {
                format!("{pad}data_dir: '{}'\n", data.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    refuse_non_loopback("patroni --validate-config", &copy)?;
    let doc = yaml12(&copy).map_err(|e| format!("pgimg's YAML reader: {e}"))?;
    let copy_path = work.join("patroni.yml");
    write(&copy_path, &copy)?;
    for ptr in ["/restapi/listen", "/postgresql/listen", "/etcd3/host"] {
        if let Some(v) = doc.pointer(ptr).and_then(Value::as_str) {
            for h in v.split(',') {
                require_loopback_literal("patroni --validate-config", h.trim())?;
            }
        }
    }
    let hosts: Vec<String> = match doc.pointer("/etcd3/hosts") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => s.split(',').map(|h| h.trim().to_string()).collect(),
        _ => Vec::new(),
    };
    for h in &hosts {
        require_loopback_literal("patroni --validate-config", h)?;
        stand_in(h)?;
    }
    let out = run(
        Command::new(tool("patroni")?)
            .arg("--validate-config")
            .arg(&copy_path)
            .current_dir(work)
            .env("HOME", work),
        RUN_TIMEOUT,
    )?;
    if !out.success() || !out.text().is_empty() {
        return Err(format!(
            "patroni --validate-config rejected it {}",
            out.report()
        ));
    }
    Ok(())
}

/// Patroni only opens a TCP connection to each etcd host, so a listener
/// stands in for etcd and no daemon has to run for its check. The members
/// of a site share their etcd hosts and their checks run at the same time:
/// one listener per address serves them all, for the life of the test
/// process, and a thread closes what it accepts so the backlog never fills.
fn stand_in(host_port: &str) -> Result<(), String> {
    static LISTENING: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    let mut set = LISTENING
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if set.contains(host_port) {
        return Ok(());
    }
    refuse_non_loopback("a stand-in etcd listener", host_port)?;
    let l = TcpListener::bind(host_port)
        .map_err(|e| format!("cannot stand in for etcd host {host_port}: {e}"))?;
    std::thread::spawn(move || {
        for conn in l.incoming() {
            drop(conn);
        }
    });
    set.insert(host_port.to_string());
    Ok(())
}

// ---------------------------------------------------------------- systemd

/// `systemd-analyze verify --root=ROOT --man=no` on each unit of a host.
///
/// ROOT is a scratch tree: a copy of the build machine's
/// `/usr/lib/systemd/system` (so `After=`/`Wants=` on stock units resolve),
/// the host's units, and stub executables and empty files at every path
/// the units execute or read as an `EnvironmentFile`.
///
/// What it checks: unit file syntax, unknown sections and keys (systemd
/// only warns and exits 0, so any output is a failure), value syntax of
/// known keys, that `Exec*=` commands are absolute and executable in ROOT,
/// and the dependency graph of the unit. What it does not: that `User=` and
/// `Group=` exist, that the real executables accept their arguments, that
/// the service starts; systemd here is 252 (Debian), the hosts run 252 (EL9).
pub fn systemd_units(
    rootfs: &Path,
    units: &[String],
    work: &Path,
) -> Vec<(String, Result<(), String>)> {
    let root = work.join("root");
    let prepared = (|| -> Result<(), String> {
        std::fs::create_dir_all(root.join("usr/lib/systemd")).map_err(|e| e.to_string())?;
        let out = run(
            Command::new("cp")
                .arg("-a")
                .arg("/usr/lib/systemd/system")
                .arg(root.join("usr/lib/systemd/")),
            RUN_TIMEOUT,
        )?;
        if !out.success() {
            return Err(format!("copying the stock units {}", out.report()));
        }
        for u in units {
            let text = read(&rootfs.join(u))?;
            write(&root.join(u), &text)?;
            for path in unit_paths(&text, true) {
                let p = root.join(path.trim_start_matches('/'));
                if !p.exists() {
                    write(&p, "#!/bin/sh\nexit 0\n")?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| e.to_string())?;
                }
            }
            for path in unit_paths(&text, false) {
                let p = root.join(path.trim_start_matches('/'));
                if !p.exists() {
                    write(&p, "")?;
                }
            }
        }
        Ok(())
    })();
    units
        .iter()
        .map(|u| {
            let r = prepared.clone().and_then(|()| {
                let out = run(
                    Command::new(tool("systemd-analyze")?)
                        .arg("verify")
                        .arg(format!("--root={}", root.display()))
                        .arg("--man=no")
                        .arg(root.join(u))
                        .env("SYSTEMD_LOG_COLOR", "0"),
                    RUN_TIMEOUT,
                )?;
                if out.success() && out.text().is_empty() {
                    Ok(())
                } else {
                    let r = root.display().to_string();
                    Err(format!(
                        "systemd-analyze verify rejected it {}",
                        out.report().replace(&r, "ROOT")
                    ))
                }
            });
            (u.clone(), r)
        })
        .collect()
}

/// Absolute paths a unit executes (`exec`) or reads as environment files.
fn unit_paths(unit: &str, exec: bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in unit.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let is_exec = k.starts_with("Exec") || k.starts_with("ExecCondition");
        if exec && is_exec {
            let cmd = v.trim().trim_start_matches(['-', '@', ':', '+', '!']);
            if let Some(p) = cmd.split_whitespace().next().filter(|p| p.starts_with('/')) {
                out.push(p.to_string());
            }
        } else if !exec && k == "EnvironmentFile" {
            let p = v.trim().trim_start_matches('-');
            if p.starts_with('/') {
                out.push(p.to_string());
            }
        }
    }
    out
}

// ---------------------------------------------------------------- pgbackrest

/// pgBackRest parses its whole configuration for `help backup` without
/// touching PostgreSQL or the repository. An unknown option is only a
/// `WARN:` with exit 0, so any warning fails. `PGBACKREST_*` variables
/// would be read as options: the environment is emptied.
pub fn pgbackrest(file: &Path) -> Result<(), String> {
    let abs = std::fs::canonicalize(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let text = read(&abs)?;
    let stanzas: Vec<String> = text
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('[')?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .filter(|s| s != "global" && !s.starts_with("global:") && !s.contains(':'))
        .collect();
    if stanzas.is_empty() {
        return Err("no stanza section: pgBackRest would have nothing to back up".into());
    }
    let scratch = std::env::temp_dir();
    for s in stanzas {
        let out = run(
            Command::new(tool("pgbackrest")?)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .current_dir(&scratch)
                .arg(format!("--config={}", abs.display()))
                .arg(format!("--stanza={s}"))
                .args(["--log-level-file=off", "help", "backup"]),
            RUN_TIMEOUT,
        )?;
        let t = out.text();
        let complaints: Vec<&str> = t
            .lines()
            .filter(|l| l.contains("WARN:") || l.contains("ERROR:"))
            .collect();
        if !complaints.is_empty() {
            // The rest is the help page: its complaints are the message.
            return Err(format!(
                "pgbackrest (stanza {s}) rejected it (exit status {})\n{}",
                out.code.map_or("none".into(), |c| c.to_string()),
                complaints.join("\n")
            ));
        }
        if !out.success() {
            return Err(format!(
                "pgbackrest (stanza {s}) rejected it {}",
                out.report()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- etcd

/// The `--flag` names `etcd --help` lists, as the `ETCD_*` variables they read.
fn etcd_variables() -> Result<&'static BTreeSet<String>, String> {
    static NAMES: OnceLock<Result<BTreeSet<String>, String>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            let out = run(Command::new(tool("etcd")?).arg("--help"), RUN_TIMEOUT)?;
            let names: BTreeSet<String> = out
                .text()
                .lines()
                .filter_map(|l| l.trim_start().strip_prefix("--"))
                .filter_map(|l| l.split([' ', '=']).next())
                .filter(|f| {
                    !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
                .map(|f| format!("ETCD_{}", f.replace('-', "_").to_ascii_uppercase()))
                .collect();
            if names.len() < 20 {
                return Err(format!("etcd --help listed only {} flags", names.len()));
            }
            Ok(names)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Reads an environment file the way both systemd and `set -a; .` agree on:
/// comments, blank lines and unquoted `NAME=value` lines without spaces,
/// quotes, `$` or backslashes.
pub fn env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (k, v) = t
            .split_once('=')
            .ok_or_else(|| format!("line {}: not NAME=value: {line}", i + 1))?;
        let name_ok = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && k.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err(format!("line {}: `{k}` is not a variable name", i + 1));
        }
        if v.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '$' | '\\' | '`'))
        {
            return Err(format!(
                "line {}: the value of {k} has a space, quote, `$` or backslash, which systemd and the shell read differently",
                i + 1
            ));
        }
        vars.push((k.to_string(), v.to_string()));
    }
    Ok(vars)
}

/// Starts etcd on loopback with an etcd.conf's variables and waits for
/// `etcdctl endpoint health`. etcd has no dry run, and an unknown `ETCD_*`
/// name is only a warning to it: every name is compared with `etcd --help`.
///
/// The copy's `ETCD_INITIAL_CLUSTER` is rewritten to this member alone: a
/// new multi-member cluster serves nothing until a quorum of its members
/// runs, and one member proves the variables are accepted just as well.
pub fn etcd(file: &Path, work: &Path) -> Result<(), String> {
    let vars = env_file(&read(file)?)?;
    let known = etcd_variables()?;
    let unknown: Vec<&str> = vars
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("ETCD_") && !known.contains(*k))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "variables etcd does not know (etcd only warns and ignores them): {}",
            unknown.join(", ")
        ));
    }
    let mut vars: BTreeMap<String, String> = vars.into_iter().collect();
    let get = |vars: &BTreeMap<String, String>, k: &str| {
        vars.get(k)
            .cloned()
            .ok_or_else(|| format!("{k} is not set"))
    };
    let name = get(&vars, "ETCD_NAME")?;
    let peer = get(&vars, "ETCD_INITIAL_ADVERTISE_PEER_URLS")?;
    let clients = get(&vars, "ETCD_ADVERTISE_CLIENT_URLS")?;
    let first_peer = peer.split(',').next().unwrap_or_default().to_string();
    vars.insert(
        "ETCD_INITIAL_CLUSTER".into(),
        format!("{name}={first_peer}"),
    );
    vars.insert(
        "ETCD_DATA_DIR".into(),
        work.join("data").display().to_string(),
    );
    let all: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    refuse_non_loopback("etcd", &all)?;
    for (k, v) in &vars {
        if k.ends_with("_URLS") {
            for url in v.split(',') {
                require_loopback_literal("etcd", url.trim())?;
            }
        }
    }
    let log_path = work.join("etcd.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let child = Command::new(tool("etcd")?)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(&vars)
        .current_dir(work)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start etcd: {e}"))?;
    let mut guard = Guard::new(child);
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail = |t: String| {
        let lines: Vec<&str> = t.lines().collect();
        indent(&lines[lines.len().saturating_sub(15)..].join("\n"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        if let Ok(Some(status)) = guard.child().try_wait() {
            return Err(format!(
                "etcd exited ({status}) before it was healthy:\n{}",
                tail(log_text())
            ));
        }
        // With TLS, etcd asks every client for a certificate of the cluster's CA.
        let tls: Vec<String> = match (
            vars.get("ETCD_TRUSTED_CA_FILE"),
            vars.get("ETCD_CERT_FILE"),
            vars.get("ETCD_KEY_FILE"),
        ) {
            (Some(ca), Some(cert), Some(key)) => vec![
                format!("--cacert={ca}"),
                format!("--cert={cert}"),
                format!("--key={key}"),
            ],
            _ => Vec::new(),
        };
        let out = run(
            Command::new(tool("etcdctl")?)
                .env_clear()
                .arg(format!("--endpoints={clients}"))
                .args(&tls)
                .args([
                    "--dial-timeout=500ms",
                    "--command-timeout=1s",
                    "endpoint",
                    "health",
                ]),
            Duration::from_secs(10),
        )?;
        if out.success() {
            break;
        }
        last = out.text();
        if Instant::now() > deadline {
            return Err(format!(
                "etcd did not become healthy within 30 s; etcdctl said:\n{}\netcd's log:\n{}",
                indent(&last),
                tail(log_text())
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = last;
    guard.stop();
    let warnings: Vec<String> = log_text()
        .lines()
        .filter(|l| l.contains("unrecognized environment variable"))
        .map(str::to_string)
        .collect();
    if !warnings.is_empty() {
        return Err(format!(
            "etcd ignored variables:\n{}",
            indent(&warnings.join("\n"))
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- PyYAML

/// pgimg's own YAML reader (YAML 1.2 core schema): what a file means.
pub fn yaml12(text: &str) -> Result<Value, String> {
    let src = pgimg::source::SourceFile::new("artifact", text);
    pgimg::spec::yaml::parse(&src)
        .map(|d| d.value)
        .map_err(|d| {
            d.iter()
                .map(|d| pgimg::diag::render_human(d, Some(&src)))
                .collect::<String>()
        })
}

/// Loads files with PyYAML's `safe_load` (the reader Patroni and cloud-init
/// use), in one interpreter, each as JSON. A value JSON has no type for
/// (a date, a timestamp) comes back tagged, so it never equals a string.
pub fn pyyaml_load(files: &[PathBuf]) -> Result<Vec<Result<Value, String>>, String> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let script = r#"
import json, sys, yaml
def other(o):
    return {"python type": type(o).__name__, "repr": repr(o)}
for p in sys.argv[1:]:
    try:
        with open(p, "rb") as f:
            v = yaml.safe_load(f)
        print(json.dumps({"ok": v}, default=other))
    except Exception as e:
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
"#;
    let out = run(
        Command::new(tool("python3")?)
            .arg("-c")
            .arg(script)
            .args(files),
        RUN_TIMEOUT,
    )?;
    if !out.success() {
        return Err(format!("python3 with PyYAML failed {}", out.report()));
    }
    let lines: Vec<&str> = out.stdout.lines().collect();
    if lines.len() != files.len() {
        return Err(format!(
            "PyYAML answered {} of {} files {}",
            lines.len(),
            files.len(),
            out.report()
        ));
    }
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).map_err(|e| format!("{e}: {l}"))?;
            Ok(match (v.get("ok"), v.get("error")) {
                (Some(ok), _) => Ok(ok.clone()),
                (_, Some(e)) => Err(e.as_str().unwrap_or_default().to_string()),
                _ => Err(format!("unexpected answer {l}")),
            })
        })
        .collect()
}

/// Every place where PyYAML read something other than what pgimg meant: a
/// value of another type (`on` → true, `0755` → 493, `1e3` → "1e3") or
/// another value, a missing or extra key.
pub fn yaml_differences(meant: &Value, pyyaml: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(meant, pyyaml, "", &mut out);
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(o) if o.contains_key("python type") => "python object",
        Value::Object(_) => "mapping",
    }
}

fn diff(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    let here = if at.is_empty() { "/" } else { at };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if !y.contains_key("python type") => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(v, w, &format!("{at}/{k}"), out),
                    None => out.push(format!("{here}: PyYAML has no key `{k}`")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{here}: PyYAML has an extra key `{k}`"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!(
                    "{here}: pgimg meant {} items, PyYAML read {}",
                    x.len(),
                    y.len()
                ));
            }
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(v, w, &format!("{at}/{i}"), out);
            }
        }
        (Value::Number(x), Value::Number(y)) if kind(a) == kind(b) => {
            if x.as_f64() != y.as_f64() {
                out.push(format!("{here}: pgimg meant {x}, PyYAML read {y}"));
            }
        }
        _ if a == b => {}
        _ => out.push(format!(
            "{here}: pgimg meant {a} ({}), PyYAML read {b} ({})",
            kind(a),
            kind(b)
        )),
    }
}

// ------------------------------------------------------------- repositories

/// What the committed data files allow a build to render, read here on
/// their own (not through pgimg's code): every repository URL and key
/// template of `data/repos.yaml` expanded for PostgreSQL 14 to 18, both
/// distributions and the given PGDG bases, plus the spec's own overrides;
/// and every version `data/catalog.yaml` lists, by package.
pub struct RepoFacts {
    pub urls: BTreeSet<String>,
    pub versions: BTreeMap<String, BTreeSet<String>>,
}

impl RepoFacts {
    pub fn load(
        root: &Path,
        pgdg_bases: &[String],
        overrides: &[String],
    ) -> Result<RepoFacts, String> {
        let repos: serde_yaml::Value = serde_yaml::from_str(&read(&root.join("data/repos.yaml"))?)
            .map_err(|e| format!("data/repos.yaml: {e}"))?;
        let mut bases: Vec<String> = pgdg_bases.to_vec();
        bases.push(
            repos["pgdg_default"]
                .as_str()
                .ok_or("data/repos.yaml: no pgdg_default")?
                .to_string(),
        );
        let mut urls: BTreeSet<String> = overrides.iter().cloned().collect();
        for group in ["distribution", "pgdg", "python"] {
            let defs = repos[group]
                .as_sequence()
                .ok_or_else(|| format!("data/repos.yaml: no `{group}` list"))?;
            for def in defs {
                for field in ["url", "gpgkey"] {
                    let Some(per) = def[field].as_mapping() else {
                        continue;
                    };
                    for t in per.values().filter_map(|v| v.as_str()) {
                        for base in &bases {
                            for major in 14..=18 {
                                urls.insert(
                                    t.replace("{pgdg}", base.trim_end_matches('/'))
                                        .replace("{major}", &major.to_string()),
                                );
                            }
                        }
                    }
                }
            }
        }
        let catalog: serde_yaml::Value =
            serde_yaml::from_str(&read(&root.join("data/catalog.yaml"))?)
                .map_err(|e| format!("data/catalog.yaml: {e}"))?;
        let mut versions = BTreeMap::new();
        for p in catalog["packages"]
            .as_sequence()
            .ok_or("data/catalog.yaml: no packages")?
        {
            let name = p["name"]
                .as_str()
                .ok_or("data/catalog.yaml: a package without name")?;
            let list: BTreeSet<String> = p["versions"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            versions.insert(name.to_string(), list);
        }
        Ok(RepoFacts { urls, versions })
    }
}

/// The repository URLs and keys a kickstart, a cloud-config and a pip
/// command line name.
pub fn rendered_repository_urls(
    kickstart: &str,
    cloud_config: &str,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in kickstart.lines() {
        for word in line.split_whitespace() {
            for prefix in ["--url=", "--baseurl=", "baseurl=", "gpgkey="] {
                if let Some(u) = word.strip_prefix(prefix) {
                    out.push(u.to_string());
                }
            }
        }
        if let Some((_, rest)) = line.split_once("--index-url ") {
            out.extend(rest.split_whitespace().next().map(str::to_string));
        }
    }
    let doc: serde_yaml::Value =
        serde_yaml::from_str(cloud_config).map_err(|e| format!("user-data: {e}"))?;
    if let Some(repos) = doc["yum_repos"].as_mapping() {
        for r in repos.values() {
            for k in ["baseurl", "gpgkey"] {
                out.extend(r[k].as_str().map(str::to_string));
            }
        }
    }
    for cmd in doc["runcmd"].as_sequence().into_iter().flatten() {
        if let Some((_, rest)) = cmd.as_str().unwrap_or("").split_once("--index-url ") {
            out.extend(rest.split_whitespace().next().map(str::to_string));
        }
    }
    Ok(out)
}

/// Every repository URL and key of a host's install paths comes from the
/// committed repository file (or the spec's override), and every pinned
/// package version of its rpms.txt is in the catalog.
pub fn repositories(
    facts: &RepoFacts,
    kickstart: &str,
    cloud_config: &str,
    rpms: &str,
) -> Result<(), String> {
    let mut errs = Vec::new();
    let urls = rendered_repository_urls(kickstart, cloud_config)?;
    if urls.is_empty() {
        errs.push("no repository URL found: nothing was checked".to_string());
    }
    for u in urls {
        if !facts.urls.contains(&u) {
            errs.push(format!(
                "`{u}` comes neither from data/repos.yaml nor from the spec"
            ));
        }
    }
    for line in rpms.lines() {
        for (name, known) in &facts.versions {
            let Some(version) = line
                .strip_prefix(name.as_str())
                .and_then(|r| r.strip_prefix('-'))
            else {
                continue;
            };
            // `patroni-etcd-4.1.0` is not a pin of `patroni` at version `etcd-4.1.0`.
            if !version.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            let base = version.split('-').next().unwrap_or(version);
            if !known.contains(base) {
                errs.push(format!(
                    "rpms.txt pins `{line}`, a version data/catalog.yaml does not list for `{name}`"
                ));
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n"))
    }
}
