//! The `pgimg secrets` commands and the build's secrets gate: read (through
//! `load`), diagnose (`secrets`, pure), and for `init` create (through
//! `write`). Orchestration, beside `ops`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::secrets::init::{self, Step};
use crate::secrets::{Problem, Reading, Reference, diagnose, references};
use crate::{Error, Validated, load};

/// Reads every secret of a validated spec and diagnoses it, with positions.
pub fn read_and_check(
    v: &Validated,
    spec_path: &Path,
    env_file: Option<&Path>,
    require: bool,
) -> Result<(Vec<Reference>, Reading, Vec<Diagnostic>), Error> {
    let refs = references(&v.parsed.spec);
    let reading = load::secret_values(&refs, &load::spec_dir(spec_path), env_file)?;
    let mut diags: Vec<Diagnostic> = diagnose(&v.fleet, &refs, &reading, require)
        .into_iter()
        .map(|d| match v.parsed.spans.edit_span(&d.pointer) {
            Some(s) => d.with_span(v.parsed.source.name.clone(), s),
            None => d,
        })
        .collect();
    crate::diag::sort(&mut diags);
    Ok((refs, reading, diags))
}

/// Where `secrets init` writes `env:` references unless told: next to the spec.
pub fn default_env_file(spec_path: &Path) -> PathBuf {
    load::spec_dir(spec_path).join("secrets.env")
}

fn problem_words(p: &Problem) -> String {
    match p {
        Problem::Missing => "missing".into(),
        Problem::Empty => "empty".into(),
        Problem::Unreadable(why) => format!("unreadable: {why}"),
        Problem::Unsafe(why) => format!("unusable: {why}"),
    }
}

/// `pgimg secrets check`: one line per distinct reference; the diagnostics
/// (errors for every missing, empty, unreadable or unusable one).
pub fn check(
    v: &Validated,
    spec_path: &Path,
    env_file: Option<&Path>,
) -> Result<(String, Vec<Diagnostic>), Error> {
    let (refs, reading, diags) = read_and_check(v, spec_path, env_file, true)?;
    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in &refs {
        let label = r.label();
        if !seen.insert(label.clone()) {
            continue;
        }
        let state = match reading.problems.get(&label) {
            None => "ok".to_string(),
            Some(p) => problem_words(p),
        };
        let _ = writeln!(out, "{state:<10} {label:<48} {}", r.what);
    }
    Ok((out, diags))
}

/// `pgimg secrets init`: creates every missing secret it can, never
/// overwrites, and says what it did and what is left to the user. `Ok(true)`
/// when every reference is now present.
pub fn init(v: &Validated, spec_path: &Path, env_file: &Path) -> Result<(String, bool), Error> {
    let refs = references(&v.parsed.spec);
    let spec_dir = load::spec_dir(spec_path);
    let existing = if env_file.exists() {
        Some(env_file)
    } else {
        None
    };
    let reading = load::secret_values(&refs, &spec_dir, existing)?;
    let steps = init::plan(&refs, &reading);
    let generated = steps
        .iter()
        .filter(|s| matches!(s, Step::CreateFile { .. } | Step::AddToEnvFile { .. }))
        .count();
    let random = load::random_bytes(generated * init::RANDOM_BYTES_PER_PASSWORD)?;
    let mut chunks = random.chunks(init::RANDOM_BYTES_PER_PASSWORD);
    let mut next_password = || {
        chunks
            .next()
            .and_then(init::password)
            .ok_or_else(|| Error::Input("the kernel's random bytes ran short; run again".into()))
    };
    let mut out = String::new();
    let mut env_lines = Vec::new();
    let mut complete = true;
    for step in &steps {
        match step {
            Step::CreateFile { label, path } => {
                let target = load::secret_path(&spec_dir, path);
                crate::write::create_secret_file(&target, &next_password()?)?;
                let _ = writeln!(out, "created    {label:<48} (mode 0600)");
            }
            Step::AddToEnvFile { label, name } => {
                env_lines.push((name.clone(), next_password()?));
                let _ = writeln!(out, "created    {label:<48} in {}", env_file.display());
            }
            Step::Present { label } => {
                let _ = writeln!(out, "present    {label}");
            }
            Step::SupplyYourself { label, what } => {
                complete = false;
                let _ = writeln!(
                    out,
                    "missing    {label:<48} the {what} is issued by its service; supply it yourself"
                );
            }
            Step::Unusable { label, problem } => {
                complete = false;
                let _ = writeln!(
                    out,
                    "{:<10} {label:<48} left as it is: secrets init never overwrites",
                    problem_words(problem)
                        .split(':')
                        .next()
                        .unwrap_or("unusable")
                );
            }
        }
    }
    complete &= init_tls(v, &spec_dir, &mut out)?;
    if !env_lines.is_empty() {
        crate::write::append_env_file(env_file, &env_lines)?;
        let _ = writeln!(
            out,
            "`env:` references are in {} (mode 0600): pass `--secrets-env {}` to `pgimg build`, or export them",
            env_file.display(),
            env_file.display()
        );
    }
    Ok((out, complete))
}

/// The TLS part of `secrets init`: per cluster with TLS on, its CA (certificate
/// and key) and every pg or etcd host's certificate and key, each pair made
/// only when both files are missing: nothing is ever overwritten. `Ok(true)`
/// when every pair is there afterwards.
fn init_tls(v: &Validated, spec_dir: &Path, out: &mut String) -> Result<bool, Error> {
    use crate::secrets::{host_tls, tls_files};
    use crate::spec::v1::SecretRef;
    let path_of = |r: &SecretRef| match r {
        SecretRef::File(f) => load::secret_path(spec_dir, f.as_str()),
        SecretRef::Env(n) => PathBuf::from(n.as_str()),
    };
    let today = crate::certs::Day::from_unix(load::unix_now());
    let mut complete = true;
    for (ci, cluster) in v.fleet.clusters.iter().enumerate() {
        let Some(files) = tls_files(&v.parsed.spec, ci) else {
            continue;
        };
        let (ca_cert, ca_key) = (
            path_of(&files.ca_cert),
            load::secret_path(spec_dir, &files.ca_key),
        );
        let ca_label = files.ca_cert.label();
        match (ca_cert.exists(), ca_key.exists()) {
            (false, false) => {
                let ca = crate::certs::new_ca(&cluster.name, today)?;
                crate::write::create_secret_file(&ca_key, ca.key.trim_end())?;
                crate::write::create_secret_file(&ca_cert, ca.cert.trim_end())?;
                let _ = writeln!(
                    out,
                    "created    {ca_label:<48} and its key {} (mode 0600)",
                    files.ca_key
                );
            }
            (true, true) => {
                let _ = writeln!(out, "present    {ca_label}");
            }
            _ => {
                complete = false;
                let _ = writeln!(
                    out,
                    "incomplete {ca_label:<48} the CA needs both ca.crt and ca.key; left as it is: secrets init never overwrites"
                );
            }
        }
        let key = load::pem_file(&ca_key).ok();
        for site in &cluster.sites {
            for host in site
                .hosts
                .iter()
                .filter(|h| h.has(crate::spec::v1::Role::Pg) || h.has(crate::spec::v1::Role::Etcd))
            {
                let (cert, hkey) = host_tls(&files.ca_cert, &host.name);
                let label = cert.label();
                let (cp, kp) = (path_of(&cert), path_of(&hkey));
                match (cp.exists(), kp.exists(), &key) {
                    (true, true, _) => {
                        let _ = writeln!(out, "present    {label}");
                    }
                    (false, false, Some(ca)) => {
                        let names = crate::plan::secrets::tls_names(
                            site,
                            host,
                            &crate::plan::context::Mapping::default(),
                        );
                        let pem = crate::certs::host_cert(&cluster.name, ca, &names, today)?;
                        crate::write::create_secret_file(&kp, pem.key.trim_end())?;
                        crate::write::create_secret_file(&cp, pem.cert.trim_end())?;
                        let _ = writeln!(
                            out,
                            "created    {label:<48} and its key (mode 0600; names {}, {})",
                            names.fqdn,
                            names.addresses.join(", ")
                        );
                    }
                    (false, false, None) => {
                        complete = false;
                        let _ = writeln!(
                            out,
                            "missing    {label:<48} needs the CA key {} to be signed; supply it yourself",
                            files.ca_key
                        );
                    }
                    _ => {
                        complete = false;
                        let _ = writeln!(
                            out,
                            "incomplete {label:<48} needs both the certificate and its key; left as it is: secrets init never overwrites"
                        );
                    }
                }
            }
        }
    }
    Ok(complete)
}
