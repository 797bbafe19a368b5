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
