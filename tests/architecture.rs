//! Imports follow the pipeline: a module may use the stages before it and
//! the shared foundations, never a later stage. `ops`, `commands`, `cmd`,
//! `lab` and `review` sit on top and may use everything.

use std::collections::BTreeMap;

use crate::support;

/// Each top-level module of `src/` and its place in the pipeline. Modules of
/// equal rank may use each other: the spec parser runs the schema, which is
/// generated from the spec's types. `load` is the reading edge at both ends
/// of validation: it reads the spec, and after `model::resolve` the secrets
/// the resolved fleet references, so it sits beside `model`. `facts` (the
/// committed repository, package and time zone data) gives `model` its
/// default pins and reads resolved hosts to pick their repositories, so it
/// sits beside `model` too.
const RANKS: &[(&str, u32)] = &[
    ("error", 0),
    ("digest", 0),
    ("source", 1),
    ("state", 1),
    ("diag", 2),
    ("explain", 2),
    ("spec", 4),
    ("schema", 4),
    ("model", 5),
    ("load", 5),
    ("facts", 5),
    ("check", 6),
    ("plan", 7),
    // What the spec references and what is wrong with the values read
    // (pure); the contract of where they land is planning (`plan::secrets`),
    // reading and writing them orchestration (`secret_ops`, beside `ops`).
    ("secrets", 5),
    ("render", 8),
    ("write", 9),
    ("ops", 10),
    ("secret_ops", 10),
    // The CA and host certificates `secrets init` and the lab make (rcgen).
    ("certs", 10),
    ("cli", 10),
    ("commands", 11),
    ("cmd", 11),
    ("lab", 11),
    ("review", 11),
];

#[test]
fn no_module_imports_a_later_stage() {
    let ranks: BTreeMap<&str, u32> = RANKS.iter().copied().collect();
    let src = support::root().join("src");
    let mut problems = Vec::new();
    for entry in walkdir::WalkDir::new(&src).sort_by_file_name() {
        let entry = entry.expect("walking src/");
        if entry.path().extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = rel.split(['/', '.']).next().unwrap().to_string();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let Some(&own) = ranks.get(module.as_str()) else {
            problems.push(format!(
                "src/{rel}: module `{module}` has no place in RANKS"
            ));
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).expect("reading source");
        for (n, line) in text.lines().enumerate() {
            for used in line.split("crate::").skip(1) {
                let name: String = used
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                match ranks.get(name.as_str()) {
                    Some(&r) if r > own => problems.push(format!(
                        "src/{rel}:{}: `{module}` uses the later stage `{name}`",
                        n + 1
                    )),
                    _ => {}
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
