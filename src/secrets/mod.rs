//! Secrets as a whole: every reference the spec makes (with the pointer it
//! was written at), what is wrong with the values a build was given, and the
//! contract that says where each secret lands on a host, with which owner
//! and mode, and which unit reads it.
//!
//! Values are read by `load::secret_values` and written by `write`; this
//! module is pure and never sees a value except to check its shape.

pub(crate) mod init;

use std::collections::BTreeMap;

use crate::diag::{Code, Diagnostic};
use crate::model::Fleet;
use crate::source::child;
use crate::spec::v1::{BackupRepo, SecretRef, Secrets, Settings, Spec};

/// One place the spec names a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// JSON pointer of the reference (`/secrets/superuser_password`).
    pub pointer: String,
    pub secret: SecretRef,
    /// What the secret is, in words.
    pub what: &'static str,
    /// How `secrets init` makes a value for it; `None`: the user must supply it.
    pub generate: Option<Generate>,
    /// What shape the value has.
    pub kind: ValueKind,
}

/// The shape of a secret value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// One line of printable characters (`check_value`): a password or key.
    Text,
    /// A PEM certificate or private key (`check_pem`): several lines, a file of its own on the host.
    Pem,
}

/// How `secrets init` makes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// A random password of 32 characters from an alphabet that every consumer
    /// (systemd environment files, `.pgpass`, pgBackRest) carries unquoted.
    Password,
    /// A certificate or key of the cluster's CA (the `certs` module, run by `secrets init`).
    Tls,
}

impl Reference {
    pub fn label(&self) -> String {
        self.secret.label()
    }
}

fn secrets_refs(out: &mut Vec<Reference>, base: &str, s: &Option<Secrets>) {
    let Some(s) = s else { return };
    let base = child(base, "secrets");
    for (key, r, what) in [
        (
            "superuser_password",
            &s.superuser_password,
            "PostgreSQL superuser password",
        ),
        (
            "replication_password",
            &s.replication_password,
            "replication password",
        ),
        ("rewind_password", &s.rewind_password, "pg_rewind password"),
        (
            "restapi_password",
            &s.restapi_password,
            "Patroni REST API password",
        ),
        (
            "backup_cipher_pass",
            &s.backup_cipher_pass,
            "pgBackRest repository cipher passphrase",
        ),
        (
            "etcd_root_password",
            &s.etcd_root_password,
            "etcd root password",
        ),
        (
            "etcd_password",
            &s.etcd_password,
            "etcd password of Patroni",
        ),
        (
            "haproxy_stats_password",
            &s.haproxy_stats_password,
            "HAProxy stats password",
        ),
    ] {
        if let Some(r) = r {
            out.push(Reference {
                pointer: child(&base, key),
                secret: r.clone(),
                what,
                generate: Some(Generate::Password),
                kind: ValueKind::Text,
            });
        }
    }
}

fn settings_refs(out: &mut Vec<Reference>, base: &str, s: Option<&Settings>) {
    let Some(repos) = s
        .and_then(|s| s.pgbackrest.as_ref())
        .and_then(|p| p.repos.as_ref())
    else {
        return;
    };
    let base = child(&child(base, "pgbackrest"), "repos");
    for (i, r) in repos.iter().enumerate() {
        repo_refs(out, &child(&base, i), r);
    }
}

fn repo_refs(out: &mut Vec<Reference>, base: &str, r: &BackupRepo) {
    // S3 keys are issued by the object store; no random value would work.
    for (key, s, what) in [
        ("key", &r.key, "S3 access key"),
        ("key_secret", &r.key_secret, "S3 secret key"),
    ] {
        if let Some(s) = s {
            out.push(Reference {
                pointer: child(base, key),
                secret: s.clone(),
                what,
                generate: None,
                kind: ValueKind::Text,
            });
        }
    }
}

/// Every secret reference of the spec, in document order.
pub fn references(spec: &Spec) -> Vec<Reference> {
    let mut out = Vec::new();
    secrets_refs(&mut out, "", &spec.secrets);
    settings_refs(&mut out, "/defaults", spec.defaults.as_ref());
    for (ci, c) in spec.clusters.iter().enumerate() {
        let cp = child("/clusters", ci);
        secrets_refs(&mut out, &cp, &c.secrets);
        settings_refs(&mut out, &child(&cp, "settings"), c.settings.as_deref());
        for (si, s) in c.sites.iter().enumerate() {
            let sp = child(&child(&cp, "sites"), si);
            settings_refs(&mut out, &child(&sp, "settings"), s.settings.as_deref());
            for (hi, h) in s.hosts.iter().enumerate() {
                let hp = child(&child(&sp, "hosts"), hi);
                settings_refs(&mut out, &child(&hp, "settings"), h.settings.as_deref());
            }
        }
        tls_refs(&mut out, spec, ci, c);
    }
    out
}

/// The TLS files of a cluster (`secrets.tls` on): where `secrets init` puts them.
pub struct TlsFiles {
    pub ca_cert: SecretRef,
    /// Never referenced by a build: only `secrets init` reads it, to sign.
    pub ca_key: String,
}

/// Where a cluster's TLS files are, `None` when TLS is off.
pub fn tls_files(spec: &Spec, ci: usize) -> Option<TlsFiles> {
    let c = spec.clusters.get(ci)?;
    let tls = crate::model::merge_tls(
        spec.secrets.as_ref(),
        c.secrets.as_ref(),
        &child("/clusters", ci),
    );
    if !tls.enabled {
        return None;
    }
    let dir = format!("{}/{}", tls.dir.trim_end_matches('/'), c.name);
    Some(TlsFiles {
        ca_cert: file_ref(format!("{dir}/ca.crt")),
        ca_key: format!("{dir}/ca.key"),
    })
}

/// A host's certificate and key references.
pub fn host_tls(ca_cert: &SecretRef, host: &str) -> (SecretRef, SecretRef) {
    let SecretRef::File(ca) = ca_cert else {
        unreachable!("the CA is always a file reference")
    };
    let dir = ca.as_str().trim_end_matches("ca.crt");
    (
        file_ref(format!("{dir}{host}.crt")),
        file_ref(format!("{dir}{host}.key")),
    )
}

fn file_ref(path: String) -> SecretRef {
    SecretRef::File(crate::spec::scalar::FilePath(path))
}

/// Whether a host holds a certificate of its own (it serves TLS).
pub fn has_own_cert(roles: &[crate::spec::v1::Role]) -> bool {
    use crate::spec::v1::Role;
    roles.iter().any(|r| matches!(r, Role::Pg | Role::Etcd))
}

fn tls_refs(out: &mut Vec<Reference>, spec: &Spec, ci: usize, c: &crate::spec::v1::Cluster) {
    let Some(files) = tls_files(spec, ci) else {
        return;
    };
    let cp = child("/clusters", ci);
    let tls_pointer = if c.secrets.as_ref().is_some_and(|s| s.tls.is_some()) {
        child(&child(&cp, "secrets"), "tls")
    } else if spec.secrets.as_ref().is_some_and(|s| s.tls.is_some()) {
        "/secrets/tls".to_string()
    } else {
        cp.clone()
    };
    let tls_ref = |pointer: String, secret: SecretRef, what| Reference {
        pointer,
        secret,
        what,
        generate: Some(Generate::Tls),
        kind: ValueKind::Pem,
    };
    out.push(tls_ref(
        tls_pointer,
        files.ca_cert.clone(),
        "cluster CA certificate",
    ));
    for (si, s) in c.sites.iter().enumerate() {
        for (hi, h) in s.hosts.iter().enumerate() {
            if !has_own_cert(&h.roles) {
                continue;
            }
            let hp = child(&child(&child(&child(&cp, "sites"), si), "hosts"), hi);
            let (cert, key) = host_tls(&files.ca_cert, h.name.as_str());
            out.push(tls_ref(hp.clone(), cert, "host certificate"));
            out.push(tls_ref(hp, key, "host private key"));
        }
    }
}

/// Why a referenced secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The variable is unset, or the file does not exist.
    Missing,
    /// The value is empty.
    Empty,
    /// The file exists but cannot be read (permissions, a directory, not a regular file).
    Unreadable(String),
    /// The value has a character no environment file can carry safely, is not
    /// UTF-8, or is too long. The text says which rule, never the value.
    Unsafe(&'static str),
}

/// The longest secret value pgimg accepts: far above any password or key,
/// far below what would make a file read a denial of service.
pub const MAX_SECRET_BYTES: usize = 4096;

/// The longest PEM file pgimg accepts: a certificate chain or an RSA-4096 key fits.
pub const MAX_PEM_BYTES: usize = 16384;

/// Checks the shape of a PEM certificate or key: ASCII lines, a `-----BEGIN `
/// line first and an `-----END ` line last. The text never repeats the value.
pub fn check_pem(v: &str) -> Result<(), Problem> {
    if v.trim().is_empty() {
        return Err(Problem::Empty);
    }
    if v.len() > MAX_PEM_BYTES {
        return Err(Problem::Unsafe("longer than 16384 bytes"));
    }
    let lines: Vec<&str> = v.trim_end().lines().collect();
    let ascii = v
        .chars()
        .all(|c| c == '\n' || c == '\r' || (c.is_ascii() && !c.is_ascii_control()));
    let framed = lines.first().is_some_and(|l| l.starts_with("-----BEGIN "))
        && lines.last().is_some_and(|l| l.starts_with("-----END "));
    if !ascii || !framed {
        return Err(Problem::Unsafe(
            "is not a PEM file (ASCII lines from `-----BEGIN ` to `-----END `)",
        ));
    }
    Ok(())
}

/// Checks a value by its kind.
pub fn check_kind(kind: ValueKind, v: &str) -> Result<(), Problem> {
    match kind {
        ValueKind::Text => check_value(v),
        ValueKind::Pem => check_pem(v),
    }
}

/// Checks the shape of a value; `Err` says what is wrong without repeating it.
pub fn check_value(v: &str) -> Result<(), Problem> {
    if v.is_empty() {
        return Err(Problem::Empty);
    }
    if v.len() > MAX_SECRET_BYTES {
        return Err(Problem::Unsafe("longer than 4096 bytes"));
    }
    // systemd's EnvironmentFile, the shell and `.pgpass` disagree on quoting;
    // only plain values are safe in all of them.
    if v.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '"' | '\'' | '\\' | '$' | '`' | ';' | '#')
            || c == '\u{feff}'
    }) {
        return Err(Problem::Unsafe(
            "contains whitespace, a control character, a quote, a backslash, `$`, a backtick, `;` or `#`",
        ));
    }
    Ok(())
}

/// The result of reading every reference: values by label, problems by label.
#[derive(Debug, Default)]
pub struct Reading {
    pub values: crate::load::SecretValues,
    pub problems: BTreeMap<String, Problem>,
}

/// Diagnostics for the secrets a build was given, one per reference (so a
/// reference used twice is reported at both places). Values that are
/// present but unusable are always errors; missing, empty or unreadable ones
/// only when `require` (`--require-secrets`, implied by `--strict`).
pub fn diagnose(
    fleet: &Fleet,
    refs: &[Reference],
    reading: &Reading,
    require: bool,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for r in refs {
        let label = r.label();
        let Some(problem) = reading.problems.get(&label) else {
            continue;
        };
        let d = match problem {
            Problem::Unsafe(why) => Diagnostic::error(
                Code::SecretValue,
                &r.pointer,
                format!("the {} from {label} {why}", r.what),
            )
            .expected("a value of printable characters without whitespace, quotes, `\\`, `$`, a backtick, `;` or `#`")
            .help("`pgimg secrets init` writes values of that shape"),
            Problem::Missing if require => Diagnostic::error(
                Code::SecretMissing,
                &r.pointer,
                format!("the {} is missing: {}", r.what, missing_words(&r.secret)),
            )
            .expected("a secret the build can read")
            .help("`pgimg secrets check` lists every missing secret; `pgimg secrets init` creates them"),
            Problem::Empty if require => Diagnostic::error(
                Code::SecretEmpty,
                &r.pointer,
                format!("the {} from {label} is empty", r.what),
            )
            .expected("a non-empty value"),
            Problem::Unreadable(why) if require => Diagnostic::error(
                Code::SecretUnreadable,
                &r.pointer,
                format!("the {} from {label} cannot be read: {why}", r.what),
            )
            .expected("a regular file the build can read"),
            _ => continue,
        };
        out.push(d);
    }
    if require {
        for c in &fleet.clusters {
            for (slot, present) in c.secrets.required() {
                if !present {
                    out.push(
                        Diagnostic::error(
                            Code::SecretUnreferenced,
                            &c.pointer,
                            format!("cluster `{}` has no `{slot}` reference", c.name),
                        )
                        .expected(format!(
                            "`secrets: {{ {slot}: {{ env: NAME }} }}` or `{{ file: PATH }}` in the spec or the cluster"
                        )),
                    );
                }
            }
        }
    }
    out
}

fn missing_words(r: &SecretRef) -> String {
    match r {
        SecretRef::Env(n) => format!("environment variable `{n}` is not set"),
        SecretRef::File(f) => format!("file `{f}` does not exist"),
    }
}
