//! The spec reference, `docs/spec.md`, generated from the schema (which
//! carries the doc comments of `spec::v1` and the defaults table), so that
//! it cannot drift from what pgimg accepts: a test compares the committed
//! file with [`markdown`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

/// Where the settings of a type may be written.
const EVERY_LAYER: &str = "fleet, cluster, site, host";

/// Settings that every layer accepts but that end up as one value per site:
/// the reason is shown beside them.
const ONE_PER_SITE: &[(&str, &str)] = &[
    ("PatroniSettings.ttl", "DCS"),
    ("PatroniSettings.loop_wait", "DCS"),
    ("PatroniSettings.retry_timeout", "DCS"),
    ("PatroniSettings.maximum_lag_on_failover", "DCS"),
    ("PatroniSettings.synchronous_mode", "DCS"),
    ("PatroniSettings.synchronous_mode_strict", "DCS"),
    ("PatroniSettings.synchronous_node_count", "DCS"),
    ("PatroniSettings.use_pg_rewind", "DCS"),
    ("PatroniSettings.use_slots", "DCS"),
    ("PostgresSettings.parameters", "DCS"),
    ("PostgresSettings.initdb", "bootstrap"),
    ("PgbackrestSettings.stanza", "first"),
    ("PgbackrestSettings.repos", "first"),
];

fn one_per_site_note(why: &str) -> &'static str {
    match why {
        "DCS" => {
            "one value per site: Patroni keeps it in the site's etcd, written by the member that bootstraps the site"
        }
        "bootstrap" => {
            "one value per site: initdb runs once, on the member that bootstraps the site"
        }
        _ => "one value per site: the site's first `pg` host's value applies to the whole site",
    }
}

/// Hand-written examples of the types whose fields have no defaults to show.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "Cluster",
        "clusters:\n  - name: shop\n    settings:\n      patroni: { synchronous_mode: 'on' }\n    sites:\n      - name: fra\n        hosts: [ … ]",
    ),
    (
        "Site",
        "sites:\n  - name: ams\n    standby_of: fra\n    hosts:\n      - { name: ams-db1, address: 10.2.0.11, roles: [pg, etcd] }",
    ),
    (
        "Host",
        "hosts:\n  - name: db1\n    address: 10.0.1.11\n    roles: [pg, etcd]\n    settings:\n      patroni: { tags: { nofailover: true } }",
    ),
    (
        "Boot",
        "boot:\n  mac: '52:54:00:12:34:56'\n  interface: ens192\n  disk: { os_disk: sda, data_disk: sdb }",
    ),
    (
        "DiskLayout",
        "disk:\n  os_disk: sda\n  data_disk: nvme1n1\n  data_size_gib: 500",
    ),
    (
        "Settings",
        "settings:\n  os: { timezone: Europe/Berlin }\n  postgresql: { parameters: { shared_buffers: 4GB } }\n  patroni: { ttl: 30 }",
    ),
    (
        "NetworkSettings",
        "network:\n  prefix: 24\n  gateway: 10.0.1.1\n  dns: [10.0.0.2, 10.0.0.3]\n  domain: db.example.net",
    ),
    (
        "RepoSettings",
        "repos:\n  baseos: 'http://mirror.example.net/rocky/9/BaseOS/x86_64/os/'\n  artifacts: 'http://boot.example.net/pgimg'",
    ),
    (
        "HbaRule",
        "pg_hba:\n  - { type: host, database: app, user: app, address: 10.0.0.0/8, method: scram-sha-256 }",
    ),
    (
        "BackupRepo",
        "repos:\n  - { type: s3, bucket: shop-backups, region: eu-central-1 }\n  - { type: posix, path: /srv/pgbackrest, retention_full_type: time, retention_full: 30 }",
    ),
    (
        "Secrets",
        "secrets:\n  superuser_password: { env: PGIMG_SUPERUSER_PASSWORD }\n  replication_password: { file: secrets/replication }",
    ),
];

struct Section {
    def: String,
    path: String,
    layers: String,
}

fn target(node: &Value) -> Option<String> {
    let r = node
        .get("$ref")
        .or_else(|| node.get("items").and_then(|i| i.get("$ref")))
        .or_else(|| {
            node.get("patternProperties")
                .and_then(Value::as_object)
                .and_then(|m| m.values().next())
                .and_then(|v| v.get("$ref"))
        })?;
    r.as_str()?.strip_prefix("#/$defs/").map(str::to_string)
}

fn def<'a>(root: &'a Value, name: &str) -> &'a Value {
    if name == "Spec" {
        root
    } else {
        &root["$defs"][name]
    }
}

/// The object types in the order a reader meets them, each with its path and layers.
fn sections(root: &Value) -> Vec<Section> {
    let mut out = vec![Section {
        def: "Spec".into(),
        path: String::new(),
        layers: "top level".into(),
    }];
    let mut seen: BTreeSet<String> = ["Spec".to_string()].into();
    let mut i = 0;
    while i < out.len() {
        let (parent, parent_path, parent_layers) = (
            out[i].def.clone(),
            out[i].path.clone(),
            out[i].layers.clone(),
        );
        if let Some(props) = def(root, &parent)["properties"].as_object() {
            for (key, node) in props {
                let Some(t) = target(node) else { continue };
                if def(root, &t).get("properties").is_none() || !seen.insert(t.clone()) {
                    continue;
                }
                let list = node.get("items").is_some();
                let path = match t.as_str() {
                    "Settings" => "settings".to_string(),
                    _ if parent_path.is_empty() => key.clone(),
                    _ => format!("{parent_path}.{key}"),
                } + if list { "[]" } else { "" };
                let layers = match t.as_str() {
                    "Settings" => EVERY_LAYER.to_string(),
                    "Secrets" => "fleet, cluster (cluster-wide only)".to_string(),
                    "Cluster" => "cluster".to_string(),
                    "Site" => "site".to_string(),
                    "Host" => "host".to_string(),
                    _ => parent_layers.clone(),
                };
                out.push(Section {
                    def: t,
                    path,
                    layers,
                });
            }
        }
        i += 1;
    }
    out
}

/// The type and allowed values of a field, in words.
fn type_text(root: &Value, node: &Value) -> String {
    if let Some(t) = target(node) {
        let d = def(root, &t);
        let inner = if d.get("properties").is_some() {
            format!("mapping ([{t}](#{}))", t.to_ascii_lowercase())
        } else {
            type_text(root, d)
        };
        return if node.get("items").is_some() {
            format!("list of {inner}")
        } else if node.get("patternProperties").is_some() {
            format!("map of name to {inner}")
        } else {
            inner
        };
    }
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let v: Vec<String> = values.iter().map(code_of).collect();
        return format!("one of {}", v.join(", "));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = node.get(key).and_then(Value::as_array) {
            if branches.iter().all(|b| b.get("const").is_some()) {
                let v: Vec<String> = branches.iter().map(|b| code_of(&b["const"])).collect();
                return format!("one of {}", v.join(", "));
            }
            if node.get("pattern").is_none() {
                let v: Vec<String> = branches
                    .iter()
                    .map(|b| match b["required"].as_array().map(Vec::as_slice) {
                        Some([only]) => format!("`{{ {}: … }}`", only.as_str().unwrap_or_default()),
                        _ => type_text(root, b),
                    })
                    .collect();
                return v.join(", or ");
            }
        }
    }
    match node.get("type").and_then(Value::as_str) {
        Some("integer") => match (node.get("minimum"), node.get("maximum")) {
            (Some(a), Some(b)) => format!("integer, {a} to {b}"),
            (Some(a), None) => format!("integer, at least {a}"),
            _ => "integer".into(),
        },
        Some("boolean") => "boolean".into(),
        Some("number") => "number".into(),
        Some("string") => match node.get("description").and_then(Value::as_str) {
            Some(d) if node.get("pattern").is_some() => format!("string: {d}"),
            _ => "string".into(),
        },
        Some("array") => match node.get("items") {
            Some(items) => format!("list of {}", type_text(root, items)),
            None => "list".into(),
        },
        _ => node
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("value")
            .to_string(),
    }
}

fn code_of(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// A field's description without the generated default sentence.
fn description(node: &Value) -> String {
    let d = node
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match d.rfind(" Default: ") {
        Some(i) => d[..i].to_string(),
        None => d.to_string(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A YAML scalar for an example.
fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// An example of a section: hand-written, else the defaults of its fields written out.
fn example(root: &Value, s: &Section) -> Option<String> {
    if s.def == "Spec" {
        return Some(
            include_str!("../../examples/minimal.yml")
                .trim_end()
                .to_string(),
        );
    }
    if let Some((_, e)) = EXAMPLES.iter().find(|(d, _)| *d == s.def) {
        return Some(e.to_string());
    }
    let key = s
        .path
        .rsplit('.')
        .next()
        .unwrap_or(&s.path)
        .trim_end_matches("[]");
    let mut body = String::new();
    for (prop, _) in def(root, &s.def)["properties"].as_object()? {
        let Some(entry) = super::defaults::of(&s.def, prop) else {
            continue;
        };
        if let super::defaults::DefaultValue::Fixed(v) = &entry.value {
            match v() {
                Value::Object(m) => {
                    let _ = writeln!(body, "  {prop}:");
                    for (k, v) in m {
                        let _ = writeln!(body, "    {k}: {}", yaml_scalar(&v));
                    }
                }
                Value::Array(_) => {}
                other => {
                    let _ = writeln!(body, "  {prop}: {}", yaml_scalar(&other));
                }
            }
        }
    }
    (!body.is_empty()).then(|| format!("{key}:  # the defaults, written out\n{}", body.trim_end()))
}

/// The whole reference as Markdown.
pub fn markdown() -> String {
    let root = crate::schema::generate();
    let mut out = String::from(
        "# Spec reference\n\n\
         <!-- Generated from the schema by `pgimg::spec::reference::markdown`; a test keeps it current. \
         Edit the doc comments in src/spec/v1.rs or the table in src/spec/defaults.rs, then run \
         `PGIMG_BLESS=1 cargo test --test main schema`. -->\n\n\
         Every key pgimg reads, section by section: its type and allowed values, its default, \
         the layers it may be written at, and what it means. Settings (the keys under `settings`) \
         may be written in four places, and the one closest to the host wins: `defaults` (the fleet), \
         `clusters[].settings`, `clusters[].sites[].settings` and `clusters[].sites[].hosts[].settings`; \
         mappings merge key by key, anything else (a list, a scalar) replaces. The README's \
         [Layering](../README.md#layering) section tells the story; `schema/pgimg.schema.json` is the \
         same language as a JSON schema for editors.\n",
    );
    let sections = sections(&root);
    out.push_str("\n## Sections\n\n");
    for s in &sections {
        let _ = writeln!(
            out,
            "- [{}](#{}) `{}`",
            s.def,
            s.def.to_ascii_lowercase(),
            if s.path.is_empty() { "/" } else { &s.path }
        );
    }
    for s in &sections {
        let node = def(&root, &s.def);
        let _ = writeln!(out, "\n## {}\n", s.def);
        let shown = if s.path.is_empty() { "/" } else { &s.path };
        let _ = writeln!(out, "Path: `{shown}`. Written at: {}.\n", s.layers);
        if let Some(d) = node.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "{d}\n");
        }
        let required: Vec<&str> = node["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("| key | type and allowed values | default | written at | meaning |\n|---|---|---|---|---|\n");
        let mut notes = Vec::new();
        let mut per_site: Vec<(&str, Vec<String>)> = Vec::new();
        for (key, field) in node["properties"].as_object().into_iter().flatten() {
            let default = match super::defaults::of(&s.def, key) {
                Some(e) => e.shown(),
                None if required.contains(&key.as_str()) => "required".into(),
                None => "—".into(),
            };
            let name = format!("{}.{key}", s.def);
            let layers = match ONE_PER_SITE.iter().find(|(f, _)| *f == name) {
                Some((_, why)) => {
                    match per_site.iter_mut().find(|(w, _)| w == why) {
                        Some((_, keys)) => keys.push(format!("`{key}`")),
                        None => per_site.push((why, vec![format!("`{key}`")])),
                    }
                    format!("{}, one per site", s.layers)
                }
                None => s.layers.clone(),
            };
            let _ = writeln!(
                out,
                "| `{key}` | {} | {} | {} | {} |",
                cell(&type_text(&root, field)),
                cell(&default),
                cell(&layers),
                cell(&description(field))
            );
        }
        for (why, keys) in per_site {
            notes.push(format!("{}: {}.", keys.join(", "), one_per_site_note(why)));
        }
        if let Some(cond) = node.get("then").and_then(|t| t["required"].as_array()) {
            let keys: Vec<String> = cond.iter().map(code_of).collect();
            notes.push(format!(
                "With `type: s3`, {} are required.",
                keys.join(" and ")
            ));
        }
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        for (key, field) in node["properties"].as_object().into_iter().flatten() {
            if let Some(Value::Object(m)) = field.get("default") {
                let _ = writeln!(
                    out,
                    "\nBuilt-in `{key}` (keys you write replace these one by one):\n"
                );
                out.push_str("| key | value |\n|---|---|\n");
                for (k, v) in m {
                    let _ = writeln!(out, "| `{k}` | {} |", code_of(v));
                }
            }
        }
        if let Some(e) = example(&root, s) {
            let _ = writeln!(out, "\nExample:\n\n```yaml\n{e}\n```");
        }
    }
    out
}
