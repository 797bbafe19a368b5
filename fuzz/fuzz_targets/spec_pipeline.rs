//! Any bytes as a spec, through the whole pure pipeline: parse, validate
//! (every diagnostic rendered both ways, from the masked source) and, when
//! valid, render every artifact. Nothing may panic, overflow the stack or
//! run away in time or memory; libFuzzer's `-timeout` and `-rss_limit_mb`
//! (set by scripts/fuzz) turn the last two into findings.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = pgimg::source::SourceFile::new(
        "fuzz.yml",
        pgimg::load::without_bom(text.to_string()),
    );
    let shown = pgimg::spec::redact::redacted(&source);
    assert_eq!(
        shown.text.lines().count(),
        source.text.lines().count(),
        "masking changed the lines"
    );
    match pgimg::validate(source, false) {
        Err(diags) => {
            for d in &diags {
                let _ = pgimg::diag::render_human(d, Some(&shown));
                let _ = pgimg::diag::render_json(d);
            }
        }
        Ok(validated) => {
            let inputs = pgimg::BuildInputs {
                roles: pgimg::load::RoleTree::embedded(),
                secrets: Default::default(),
                mapping: Default::default(),
                overlays: Default::default(),
            };
            // A build may refuse a spec (user-data over EC2's limit); it may not panic.
            let _ = pgimg::build(&validated, &inputs);
        }
    }
});
