//! The committed schema is the one the Rust types generate.

use crate::support;

#[test]
fn committed_schema_matches_the_types() {
    let generated = pgimg::schema::generate_text();
    let path = support::root().join("schema/pgimg.schema.json");
    if support::bless() {
        std::fs::write(&path, &generated).expect("writing schema");
    }
    let committed = std::fs::read_to_string(&path).expect("reading schema/pgimg.schema.json");
    assert!(
        committed == generated,
        "schema/pgimg.schema.json is stale: run `cargo run -- schema > schema/pgimg.schema.json` (or PGIMG_BLESS=1 cargo test)"
    );
}

#[test]
fn every_property_has_a_description() {
    fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, p) in props {
                if p.get("description").is_none() {
                    missing.push(format!("{path}/{k}"));
                }
                walk(p, &format!("{path}/{k}"), missing);
            }
        }
        if let Some(defs) = v.get("$defs").and_then(|d| d.as_object()) {
            for (k, d) in defs {
                walk(d, &format!("$defs/{k}"), missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(&pgimg::schema::generate(), "", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:?}"
    );
}

#[test]
fn every_default_row_lands_in_the_schema_and_no_default_is_prose() {
    let schema = pgimg::schema::generate();
    for entry in pgimg::spec::defaults::table() {
        let (def, property) = entry.def_and_property();
        let pointer = if def == "Spec" {
            format!("/properties/{property}")
        } else {
            format!("/$defs/{def}/properties/{property}")
        };
        let field = schema
            .pointer(&pointer)
            .unwrap_or_else(|| panic!("{}: no such field", entry.field));
        let description = field["description"].as_str().unwrap_or_default();
        assert!(
            description.ends_with(&format!("Default: {}.", entry.shown())),
            "{}: {description}",
            entry.field
        );
        if let pgimg::spec::defaults::DefaultValue::Fixed(value) = &entry.value {
            assert_eq!(field["default"], value(), "{}", entry.field);
        }
    }
    // A default stated by hand in a doc comment would drift from the table.
    let text = pgimg::schema::generate_text();
    assert!(
        !text.contains("(default"),
        "a description states a default in prose; put it in src/spec/defaults.rs"
    );
}

#[test]
fn the_schema_offers_no_null_and_no_nonstandard_format() {
    let text = pgimg::schema::generate_text();
    assert!(!text.contains("\"null\""), "an optional field offers null");
    for format in ["uint", "int8", "int16", "int32", "int64", "double", "float"] {
        assert!(
            !text.contains(&format!("\"format\": \"{format}")),
            "non-standard format {format}"
        );
    }
    let schema = pgimg::schema::generate();
    let majors = pgimg::spec::defaults::PG_MAJORS;
    assert_eq!(
        schema.pointer("/$defs/PostgresSettings/properties/major/minimum"),
        Some(&serde_json::json!(majors.start())),
        "the schema's PostgreSQL majors are the ones pgimg accepts (PG0170)"
    );
    assert_eq!(
        schema.pointer("/$defs/PostgresSettings/properties/major/maximum"),
        Some(&serde_json::json!(majors.end()))
    );
}

#[test]
fn synchronous_mode_takes_patronis_booleans() {
    let base = support::read("tests/errors/base.yml");
    for (written, meant) in [
        ("true", pgimg::spec::v1::SyncMode::On),
        ("false", pgimg::spec::v1::SyncMode::Off),
        ("quorum", pgimg::spec::v1::SyncMode::Quorum),
    ] {
        let text = base.replace(
            "synchronous_mode: 'off'",
            &format!("synchronous_mode: {written}"),
        );
        let v = support::validate("spec.yml", &text)
            .unwrap_or_else(|d| panic!("synchronous_mode: {written}: {d:?}"));
        for (_, _, h) in v.fleet.hosts() {
            assert_eq!(h.config.patroni.synchronous_mode, meant, "{written}");
        }
    }
    let text = base.replace("synchronous_mode: 'off'", "synchronous_mode: 'sometimes'");
    let d = support::diagnostics("spec.yml", &text, false);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].code.as_str(), "PG0015");
}

#[test]
fn the_spec_reference_is_generated_from_the_schema() {
    let generated = pgimg::spec::reference::markdown();
    let path = support::root().join("docs/spec.md");
    if support::bless() {
        std::fs::write(&path, &generated).expect("writing docs/spec.md");
    }
    let committed = std::fs::read_to_string(&path).expect("reading docs/spec.md");
    assert!(
        committed == generated,
        "docs/spec.md is stale: run `PGIMG_BLESS=1 cargo test --test main schema`"
    );
    // Every field of every object type is in it.
    let schema = pgimg::schema::generate();
    for (name, def) in schema["$defs"].as_object().expect("$defs") {
        for key in def["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(
                committed.contains(&format!("## {name}\n"))
                    && committed.contains(&format!("| `{key}` |")),
                "docs/spec.md lacks {name}.{key}"
            );
        }
    }
}
