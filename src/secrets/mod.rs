//! Secrets as a whole: every reference the spec makes (with the pointer it
//! was written at), what is wrong with the values a build was given, and the
//! contract that says where each secret lands on a host, with which owner
//! and mode, and which unit reads it.
//!
//! Values are read by `load::secret_values` and written by `write`; this
//! module is pure and never sees a value except to check its shape.

pub mod init;

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
}

/// How `secrets init` makes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    /// A random password of 32 characters from an alphabet that every consumer
    /// (systemd environment files, `.pgpass`, pgBackRest) carries unquoted.
    Password,
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
    ] {
        if let Some(r) = r {
            out.push(Reference {
                pointer: child(&base, key),
                secret: r.clone(),
                what,
                generate: Some(Generate::Password),
            });
        }
    }
}

fn settings_refs(out: &mut Vec<Reference>, base: &str, s: &Option<Settings>) {
    let Some(repos) = s
        .as_ref()
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
            });
        }
    }
}

/// Every secret reference of the spec, in document order.
pub fn references(spec: &Spec) -> Vec<Reference> {
    let mut out = Vec::new();
    secrets_refs(&mut out, "", &spec.secrets);
    settings_refs(&mut out, "/defaults", &spec.defaults);
    for (ci, c) in spec.clusters.iter().enumerate() {
        let cp = child("/clusters", ci);
        secrets_refs(&mut out, &cp, &c.secrets);
        settings_refs(&mut out, &child(&cp, "settings"), &c.settings);
        for (si, s) in c.sites.iter().enumerate() {
            let sp = child(&child(&cp, "sites"), si);
            settings_refs(&mut out, &child(&sp, "settings"), &s.settings);
            for (hi, h) in s.hosts.iter().enumerate() {
                let hp = child(&child(&sp, "hosts"), hi);
                settings_refs(&mut out, &child(&hp, "settings"), &h.settings);
            }
        }
    }
    out
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
