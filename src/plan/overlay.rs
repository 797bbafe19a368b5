//! User files (`overlays/`) merged into a host's plan: every file whose
//! scope covers the host, the most specific scope winning at each path
//! (all → cluster → role → site → host). A user file may not take the place
//! of a directory pgimg creates, nor of a file pgimg renders unless its
//! `replaces: true` in `overlays/attributes.yaml` declares the override.

use std::collections::BTreeMap;

use super::{HostPlan, Planned, Producer, add_parents, parse_mode};
use crate::Error;
use crate::load::{OverlayFile, OverlayScope, Overlays};
use crate::model::{Cluster, Fleet, Host, Site};

/// Every scope names something the fleet has (a typo would silently ship nothing).
pub(crate) fn check_scopes(
    fleet: &Fleet,
    overlays: &Overlays,
    roles: &[String],
) -> Result<(), Error> {
    for f in &overlays.files {
        let known = match &f.scope {
            OverlayScope::All => true,
            OverlayScope::Cluster(c) => fleet.clusters.iter().any(|x| &x.name == c),
            OverlayScope::Role(r) => roles.iter().any(|x| x == r),
            OverlayScope::Site { cluster, site } => fleet
                .clusters
                .iter()
                .any(|c| &c.name == cluster && c.site(site).is_some()),
            OverlayScope::Host(h) => fleet.hosts().any(|(_, _, x)| &x.name == h),
        };
        if !known {
            let what = match &f.scope {
                OverlayScope::Cluster(c) => format!("cluster `{c}`"),
                OverlayScope::Role(r) => format!("role `{r}` (roles: {})", roles.join(", ")),
                OverlayScope::Site { cluster, site } => {
                    format!("site `{site}` in cluster `{cluster}`")
                }
                OverlayScope::Host(h) => format!("host `{h}`"),
                OverlayScope::All => unreachable!("`all` always matches"),
            };
            return Err(Error::Input(format!(
                "{}: the spec has no {what}",
                f.source
            )));
        }
    }
    Ok(())
}

fn covers(scope: &OverlayScope, plan: &HostPlan, c: &Cluster, s: &Site, h: &Host) -> bool {
    match scope {
        OverlayScope::All => true,
        OverlayScope::Cluster(n) => *n == c.name,
        OverlayScope::Role(r) => plan.roles.contains(r),
        OverlayScope::Site { cluster, site } => *cluster == c.name && *site == s.name,
        OverlayScope::Host(n) => *n == h.name,
    }
}

/// What pgimg itself puts at a path, in words, for an error message.
fn rendered_by(p: &Planned) -> String {
    match &p.producer {
        Producer::Directory => "a directory pgimg creates".into(),
        Producer::Template(t) => format!("a file pgimg renders from the role template `{t}`"),
        Producer::Typed(t) => format!("a file pgimg serializes ({t:?})"),
        Producer::User { source, .. } => format!("the user file {source}"),
    }
}

/// Merges the host's user files into its plan.
pub(crate) fn apply(
    plan: &mut HostPlan,
    overlays: &Overlays,
    c: &Cluster,
    s: &Site,
    h: &Host,
) -> Result<(), Error> {
    // Path → the most specific user file for it.
    let mut chosen: BTreeMap<&str, &OverlayFile> = BTreeMap::new();
    for f in overlays
        .files
        .iter()
        .filter(|f| covers(&f.scope, plan, c, s, h))
    {
        match chosen.get(f.path.as_str()) {
            Some(old) if old.scope.rank() == f.scope.rank() => {
                return Err(Error::Input(format!(
                    "{} and {} both put `{}` on host {}, at the same level; keep one, or move one to a more specific scope",
                    old.source, f.source, f.path, h.name
                )));
            }
            Some(old) if old.scope.rank() > f.scope.rank() => {}
            _ => {
                chosen.insert(&f.path, f);
            }
        }
    }
    for (path, f) in chosen {
        // Neither the file nor any directory leading to it may stand where pgimg puts a file.
        let mut ancestor = path;
        while let Some(i) = ancestor.rfind('/') {
            ancestor = &ancestor[..i];
            if let Some(p) = plan.files.get(ancestor)
                && p.producer != Producer::Directory
            {
                return Err(Error::Input(format!(
                    "{}: `{path}` would be inside `{ancestor}`, which on host {} is {}",
                    f.source,
                    h.name,
                    rendered_by(p)
                )));
            }
        }
        if let Some(p) = plan.files.get(path) {
            let directory = p.producer == Producer::Directory;
            if directory || !f.attributes.replaces {
                let how = if directory {
                    String::new()
                } else {
                    format!(
                        "; to ship yours instead, declare `{}: {{ replaces: true }}` in overlays/attributes.yaml",
                        f.source.trim_start_matches("overlays/")
                    )
                };
                return Err(Error::Input(format!(
                    "{}: `{path}` on host {} is already {}{how}",
                    f.source,
                    h.name,
                    rendered_by(p)
                )));
            }
        }
        if plan
            .files
            .range::<str, _>((std::ops::Bound::Excluded(path), std::ops::Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&format!("{path}/")))
        {
            return Err(Error::Input(format!(
                "{}: `{path}` on host {} is a directory pgimg creates",
                f.source, h.name
            )));
        }
        let a = &f.attributes;
        let what = format!("overlays/attributes.yaml: {}", f.source);
        let mode = match &a.mode {
            Some(m) => parse_mode(m, &what)?,
            None if f.executable => 0o755,
            None => 0o644,
        };
        let account = |name: &Option<String>| -> Result<String, Error> {
            let name = name.clone().unwrap_or_else(|| "root".into());
            let valid = !name.is_empty()
                && name.len() <= 32
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')
                });
            if valid {
                Ok(name)
            } else {
                Err(Error::Input(format!(
                    "{what}: `{name}` is not an account name (lowercase letters, digits, `_` and `-`, starting with a letter or `_`)"
                )))
            }
        };
        plan.files.insert(
            path.to_string(),
            Planned {
                producer: Producer::User {
                    source: f.source.clone(),
                    bytes: f.bytes.clone(),
                },
                mode,
                owner: account(&a.owner)?,
                group: account(&a.group)?,
            },
        );
    }
    add_parents(&mut plan.files);
    Ok(())
}
