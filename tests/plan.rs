//! The plan stage's promises: the services the plan declares are exactly
//! what the rendered units run (the lab starts daemons from the plan, never
//! from unit text), and role data stays strict.

use pgimg::load::RoleTree;
use pgimg::plan::roles::RoleDefs;

use crate::support;

/// `ExecStart=`, `EnvironmentFile=` and `Environment=` of a unit's text.
fn unit_lines(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut exec, mut files, mut env) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("ExecStart=") {
            exec = v.split_whitespace().map(str::to_string).collect();
        } else if let Some(v) = line.strip_prefix("EnvironmentFile=") {
            files.push(v.to_string());
        } else if let Some(v) = line.strip_prefix("Environment=") {
            env.push(v.to_string());
        }
    }
    (exec, files, env)
}

#[test]
fn every_planned_service_is_what_its_rendered_unit_runs() {
    let mut checked = 0;
    for example in ["reference-cluster", "minimal", "fleet"] {
        let rel = format!("examples/{example}.yml");
        let v = support::validate(&rel, &support::read(&rel)).expect("valid example");
        let defs = RoleDefs::parse(&RoleTree::embedded()).expect("role definitions");
        let m = pgimg::plan::context::Mapping::default();
        let tree = crate::golden::build_example(example);
        for (c, s, h) in v.fleet.hosts() {
            let plan = pgimg::plan::plan_host(&defs, &v.fleet, c, s, h, &m).expect("plans");
            for svc in &plan.services {
                let unit_path = format!("/etc/systemd/system/{}", svc.unit);
                if !plan.files.contains_key(&unit_path) {
                    continue; // the package's own unit (HAProxy)
                }
                let text = &tree.files[&format!("hosts/{}/rootfs{unit_path}", h.name)].bytes;
                let (exec, files, env) = unit_lines(&String::from_utf8_lossy(text));
                assert_eq!(exec, svc.exec, "{}: {} ExecStart", h.name, svc.unit);
                assert_eq!(
                    files, svc.environment_files,
                    "{}: {} EnvironmentFile",
                    h.name, svc.unit
                );
                assert_eq!(env, svc.environment, "{}: {} Environment", h.name, svc.unit);
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} units were compared");
}

#[test]
fn a_role_guard_with_a_typo_fails_the_build_naming_the_role_file() {
    let mut tree = RoleTree::embedded();
    let yaml = tree.files.get_mut("dr/role.yaml").expect("dr role");
    let text = String::from_utf8(yaml.clone()).unwrap();
    *yaml = text
        .replace("when: site.is_dr", "when: site.is_dt")
        .into_bytes();
    let rel = "examples/reference-cluster.yml";
    let v = support::validate(rel, &support::read(rel)).expect("valid example");
    let inputs = pgimg::BuildInputs {
        roles: tree,
        secrets: Default::default(),
        mapping: Default::default(),
        overlays: Default::default(),
    };
    let Err(err) = pgimg::build(&v, &inputs) else {
        panic!("a typo in a guard must fail the build");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("roles/dr/role.yaml") && msg.contains("site.is_dt"),
        "{msg}"
    );
}
