//! One test per diagnostic code: the valid base spec `tests/errors/base.yml`,
//! one textual mutation, and exactly that one diagnostic at that line and
//! column of the mutated text.

use pgimg::diag::{Code, Diagnostic, Severity};

use crate::support;

const BASE: &str = "tests/errors/base.yml";

/// One mutation of the base and the single diagnostic it must cause.
struct Case {
    /// Text of the base to replace; it must occur exactly `times` times.
    from: &'static str,
    to: &'static str,
    times: usize,
    code: &'static str,
    /// 1-based line and column in the mutated text.
    line: usize,
    col: usize,
}

const fn case(
    from: &'static str,
    to: &'static str,
    code: &'static str,
    at: (usize, usize),
) -> Case {
    Case {
        from,
        to,
        times: 1,
        code,
        line: at.0,
        col: at.1,
    }
}

const fn case_all(
    from: &'static str,
    to: &'static str,
    times: usize,
    code: &'static str,
    at: (usize, usize),
) -> Case {
    Case {
        from,
        to,
        times,
        code,
        line: at.0,
        col: at.1,
    }
}

fn base() -> String {
    support::read(BASE)
}

fn mutate(name: &str, c: &Case) -> String {
    let base = base();
    let found = base.matches(c.from).count();
    assert_eq!(
        found, c.times,
        "case {name}: `{}` occurs {found} times in {BASE}, expected {}",
        c.from, c.times
    );
    base.replace(c.from, c.to)
}

fn show(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| {
            let at = d
                .span
                .map(|s| format!("{}:{}", s.line, s.col))
                .unwrap_or_else(|| "?".into());
            format!("  {} at {at} {}: {}", d.code.as_str(), d.pointer, d.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Applies the case and checks that exactly its diagnostic comes out, where it should.
fn check_case(name: &str, c: &Case, strict: bool) -> Diagnostic {
    let text = mutate(name, c);
    let diags = support::diagnostics(BASE, &text, strict);
    assert!(
        diags.len() == 1 && diags[0].code.as_str() == c.code,
        "case {name}: expected exactly one {} at {}:{}, got {}:\n{}",
        c.code,
        c.line,
        c.col,
        diags.len(),
        show(&diags)
    );
    let d = diags.into_iter().next().unwrap_or_else(|| unreachable!());
    let span = d
        .span
        .unwrap_or_else(|| panic!("case {name}: {} has no position", c.code));
    assert_eq!(
        (span.line, span.col),
        (c.line, c.col),
        "case {name}: {} at the wrong place:\n{}",
        c.code,
        show(std::slice::from_ref(&d))
    );
    assert_eq!(d.file.as_deref(), Some(BASE), "case {name}: file name");
    assert!(!d.message.is_empty(), "case {name}: empty message");
    assert!(
        d.expected.as_deref().is_some_and(|e| !e.is_empty()),
        "case {name}: {} says what was found but not what was expected: {}",
        c.code,
        d.message
    );
    let code = Code::parse(c.code).unwrap_or_else(|| panic!("case {name}: unknown code"));
    let severity = if strict {
        Severity::Error
    } else {
        code.severity()
    };
    assert_eq!(d.severity, severity, "case {name}: severity");
    // A warning alone does not fail validation; an error does.
    let valid = pgimg::validate(pgimg::source::SourceFile::new(BASE, text), strict).is_ok();
    assert_eq!(
        valid,
        severity == Severity::Warning,
        "case {name}: validation result"
    );
    d
}

macro_rules! cases {
    ($($test:ident => $case:expr;)*) => {
        /// Every case, by test name.
        const CASES: &[(&str, Case)] = &[$((stringify!($test), $case),)*];

        $(
            #[test]
            fn $test() {
                check_case(stringify!($test), &$case, false);
            }
        )*
    };
}

const LB1: &str = "roles: [haproxy] }";
const REPO: &str = "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]";

cases! {
    // Parse and schema stages.
    pg0001_yaml_syntax => case("    loop_wait: 10", "    loop_wait: 10: 3", "PG0001", (12, 18));
    pg0002_duplicate_key => case("    ttl: 30\n", "    ttl: 30\n    ttl: 31\n", "PG0002", (12, 5));
    pg0003_yaml_tag => case("major: 17", "major: !!int 17", "PG0003", (6, 12));
    pg0010_unknown_key => case("loop_wait: 10", "loop_wiat: 10", "PG0010", (12, 5));
    pg0011_missing_key => case("name: lb1, address: 10.1.0.10, ", "name: lb1, ", "PG0011", (27, 13));
    pg0012_wrong_type => case("ttl: 30", "ttl: thirty", "PG0012", (11, 10));
    pg0013_bad_string => case("name: lb1,", "name: lb_1,", "PG0013", (27, 21));
    pg0014_out_of_range => case("port: 5432", "port: 70000", "PG0014", (7, 11));
    pg0015_not_allowed => case(LB1, "roles: [proxy] }", "PG0015", (27, 54));
    pg0016_schema_other => case(LB1, "roles: [] }", "PG0016", (27, 53));
    pg0020_unsupported_version => case("version: 1", "version: 2", "PG0020", (3, 10));
    pg0030_yaml11_boolean => case("synchronous_mode: 'off'", "synchronous_mode: off", "PG0030", (14, 23));

    // Semantic checks (check::RULES).
    pg0101_duplicate_host_name => case("name: lb1,", "name: pg1,", "PG0101", (27, 21));
    pg0102_duplicate_address => case("10.1.0.10", "10.1.0.11", "PG0102", (27, 35));
    pg0103_invalid_address => case("10.1.0.10", "10.1.0.256", "PG0103", (27, 35));
    pg0104_invalid_host_name => case("name: lb1,", "name: lb-,", "PG0104", (27, 21));
    pg0108_prefix_family => case(
        "settings: { network: { gateway: 10.2.0.1, dns: [10.2.0.2] } }",
        "settings: { network: { gateway: 10.2.0.1, dns: [10.2.0.2], prefix: 64 } }",
        "PG0108",
        (32, 76)
    );
    pg0219_cron_range => case(
        "        repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]\n",
        "        repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]\n        schedule: { full: '0 24 * * 0' }\n",
        "PG0219",
        (20, 27)
    );
    pg0110_no_etcd => case_all("roles: [etcd, pg]", "roles: [pg]", 3, "PG0110", (33, 9));
    pg0111_even_etcd => case(LB1, "roles: [haproxy, etcd] }", "PG0111", (23, 9));
    pg0112_single_etcd => case(
        "          - { name: n2, address: 10.3.0.12, roles: [pg, etcd] }\n          - { name: n3, address: 10.3.0.13, roles: [etcd] }\n",
        "          - { name: n2, address: 10.3.0.12, roles: [pg] }\n",
        "PG0112",
        (41, 9)
    );
    pg0114_etcd_majority_with_patroni => case(
        "- { name: n3, address: 10.3.0.13, roles: [etcd] }\n",
        "- { name: n3, address: 10.3.0.13, roles: [etcd] }\n          - { name: n4, address: 10.3.0.14, roles: [pg] }\n",
        "PG0114",
        (41, 9)
    );
    pg0120_patroni_timing => case("loop_wait: 10", "loop_wait: 11", "PG0120", (11, 10));
    pg0121_patroni_minimum => case("retry_timeout: 10", "retry_timeout: 2", "PG0121", (13, 20));
    pg0130_port_collision => case(
        LB1,
        "roles: [haproxy], settings: { haproxy: { stats_port: 5000 } } }",
        "PG0130",
        (27, 99)
    );
    pg0131_closed_client_port => case(
        "{ name: n2, address: 10.3.0.12, roles: [pg, etcd] }",
        "{ name: n2, address: 10.3.0.12, roles: [etcd] }",
        "PG0131",
        (42, 13)
    );
    pg0140_unknown_source => case(
        "standby_of: east\n        scope: main_west",
        "standby_of: eats\n        scope: main_west",
        "PG0140",
        (29, 21)
    );
    pg0141_standby_cycle => case(
        "standby_of: east\n        scope: main_west",
        "standby_of: west\n        scope: main_west",
        "PG0141",
        (29, 21)
    );
    pg0142_same_scope => case("scope: main_west", "scope: main", "PG0142", (30, 16));
    pg0143_primary_site_count => case(
        "        standby_of: east\n        scope: main_west",
        "        scope: main_west",
        "PG0143",
        (20, 5)
    );
    pg0144_source_without_pg => case_all("roles: [etcd, pg]", "roles: [etcd]", 3, "PG0144", (29, 21));
    pg0145_dr_no_failover => case(
        "gateway: 10.2.0.1, dns: [10.2.0.2] } }",
        "gateway: 10.2.0.1, dns: [10.2.0.2] }, patroni: { tags: { nofailover: true } } }",
        "PG0145",
        (32, 101)
    );
    pg0146_duplicate_slot => case(
        "        scope: main_north",
        "        scope: main_north\n        slot_name: standby_west",
        "PG0146",
        (40, 20)
    );
    pg0150_duplicate_member => case("name: w3,", "name: w3, member_name: pg3,", "PG0150", (36, 38));
    pg0151_duplicate_site => case("- name: north", "- name: west", "PG0151", (37, 15));
    pg0152_duplicate_scope => case("scope: main_north", "scope: main_west", "PG0152", (39, 16));
    pg0160_invalid_identifier => case("slot_name: standby_west", "slot_name: Standby_west", "PG0160", (31, 20));
    pg0170_unsupported_major => case("major: 17", "major: 13", "PG0170", (6, 12));
    pg0180_sync_count => case(
        "dns: [10.1.0.2] } }",
        "dns: [10.1.0.2] }, patroni: { synchronous_mode: quorum, synchronous_node_count: 3 } }",
        "PG0180",
        (22, 131)
    );
    pg0181_strict_sync_single => case(
        "gateway: 10.3.0.1, dns: [10.3.0.2] } }",
        "gateway: 10.3.0.1, dns: [10.3.0.2] }, patroni: { synchronous_mode: 'on', synchronous_mode_strict: true } }",
        "PG0181",
        (40, 130)
    );
    pg0190_remote_trust => case("method: scram-sha-256", "method: trust", "PG0190", (9, 78));
    pg0191_hba_address => case("type: host,", "type: local,", "PG0191", (9, 59));
    pg0200_haproxy_without_pg => case(
        "roles: [etcd] }\n",
        "roles: [etcd] }\n  - name: edge\n    sites:\n      - name: lb\n        hosts:\n          - { name: lb9, address: 10.9.0.10, roles: [haproxy] }\n",
        "PG0200",
        (49, 53)
    );
    pg0210_s3_incomplete => case(
        REPO,
        "repos: [{ type: s3, bucket: backups, region: eu-west-1, key_type: shared }]",
        "PG0210",
        (19, 17)
    );
    pg0211_no_repository => case(
        REPO,
        "repos: []",
        "PG0211",
        (19, 16)
    );
    pg0220_gateway_family => case(
        LB1,
        "roles: [haproxy], settings: { network: { gateway: 'fd00::1' } } }",
        "PG0220",
        (27, 96)
    );
    pg0113_etcd_election => case(
        "  patroni:\n    ttl: 30",
        "  etcd: { heartbeat_interval_ms: 300 }\n  patroni:\n    ttl: 30",
        "PG0113",
        (10, 34)
    );
    pg0201_server_maxconn => case(
        LB1,
        "roles: [haproxy], settings: { haproxy: { server_maxconn: 97 } } }",
        "PG0201",
        (27, 103)
    );
    pg0202_virtual_address_single => case(
        LB1,
        "roles: [haproxy], settings: { haproxy: { virtual_address: 10.1.0.9 } } }",
        "PG0202",
        (27, 104)
    );
    pg0240_backup_schedule => case(
        "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]",
        "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]\n        schedule: { incr: '0 1 1 * 1' }",
        "PG0240",
        (20, 27)

    );
    pg0300_s3_auto_on_bare_metal => case(
        "repos: [{ type: posix, path: /var/lib/pgbackrest, mount: { server: nfs1, export: /pgbackrest } }]\n    sites:\n      - name: east\n        settings: { network: { gateway: 10.1.0.1, dns: [10.1.0.2] } }\n        hosts:\n          - { name: pg1, address: 10.1.0.11, roles: [pg, etcd] }",
        "repos: [{ type: s3, bucket: bk, region: eu-west-1, key_type: auto }]\n    sites:\n      - name: east\n        settings: { network: { gateway: 10.1.0.1, dns: [10.1.0.2] }, repos: { artifacts: 'http://boot.example.com/pgimg' } }\n        hosts:\n          - { name: pg1, address: 10.1.0.11, roles: [pg, etcd], boot: { mac: '52:54:00:12:34:56' } }",
        "PG0300",
        (19, 70)
    );
    pg0301_unshared_posix_repository => case(
        "dns: [10.1.0.2] } }",
        "dns: [10.1.0.2] }, pgbackrest: { repos: [{ type: posix }] } }",
        "PG0301",
        (22, 92)
    );
    pg0302_install_without_disk => case(LB1, "roles: [haproxy], boot: { install: true } }", "PG0302", (27, 81));
    pg0303_unknown_package_version => case(
        "      pgbackrest:\n",
        "      pgbackrest:\n        version: 2.99.0\n",
        "PG0303",
        (19, 18)
    );
    pg0304_address_outside_subnet => case(
        "address: 10.1.0.10, roles: [haproxy] }",
        "address: 10.1.1.10, roles: [haproxy], settings: { network: { prefix: 16 } } }",
        "PG0304",
        (27, 35)
    );
    pg0305_gateway_outside_subnet => case("gateway: 10.2.0.1,", "gateway: 10.9.0.1,", "PG0305", (32, 41));
    pg0306_unknown_time_zone => case(
        "  postgresql:\n    major: 17",
        "  os: { timezone: Europe/Berln }\n  postgresql:\n    major: 17",
        "PG0306",
        (5, 19)
    );
    pg0307_no_dns_for_repositories => case("gateway: 10.2.0.1, dns: [10.2.0.2] }", "gateway: 10.2.0.1 }", "PG0307", (32, 41));
    pg0308_mixed_majors => case(
        "name: n1, address: 10.3.0.11, roles: [pg, etcd] }",
        "name: n1, address: 10.3.0.11, roles: [pg, etcd], settings: { postgresql: { major: 16 } } }",
        "PG0308",
        (42, 97)
    );
    pg0309_host_level_cluster_setting => case(
        "name: pg3, address: 10.1.0.13, roles: [pg, etcd] }",
        "name: pg3, address: 10.1.0.13, roles: [pg, etcd], settings: { patroni: { ttl: 40 } } }",
        "PG0309",
        (26, 93)
    );
    pg0230_pxe_without_artifacts => case(
        LB1,
        "roles: [haproxy], boot: { mac: '52:54:00:12:34:56' } }",
        "PG0230",
        (27, 77)
    );
    pg0410_restapi_open => case(
        "  restapi_password: { env: PGIMG_RESTAPI_PASSWORD }\n",
        "",
        "PG0410",
        (16, 5)
    );
    pg0411_tls_off => case(
        "  haproxy_stats_password: { env: PGIMG_HAPROXY_STATS_PASSWORD }\n",
        "  haproxy_stats_password: { env: PGIMG_HAPROXY_STATS_PASSWORD }\n  tls: { enabled: false }\n",
        "PG0411",
        (50, 19)
    );
    pg0412_control_plane_open => case(
        "  etcd_password: { env: PGIMG_ETCD_PASSWORD }\n",
        "",
        "PG0412",
        (16, 5)
    );
    pg0413_patroni_etcd_auth => case(
        "  patroni:\n    ttl: 30\n",
        "  patroni:\n    install: rpm\n    rpm_version: 4.1.0\n    ttl: 30\n",
        "PG0413",
        (12, 18)
    );
}

#[test]
fn the_base_spec_validates_with_no_diagnostic() {
    let diags = support::diagnostics(BASE, &base(), true);
    assert!(diags.is_empty(), "{BASE} is not clean:\n{}", show(&diags));
}

#[test]
fn every_code_has_its_own_case() {
    let mut missing = Vec::new();
    for code in Code::ALL {
        // PG0004 is about many diagnostics at once; its test is below. The
        // secret codes judge the values a build reads, not the spec alone:
        // their one-mutation cases are in tests/secrets.rs.
        if *code == Code::TooManyProblems || crate::secrets::CODES.contains(&code.as_str()) {
            continue;
        }
        if !CASES.iter().any(|(_, c)| c.code == code.as_str()) {
            missing.push(code.as_str());
        }
    }
    assert!(missing.is_empty(), "codes without a case: {missing:?}");
    for rule in pgimg::check::RULES {
        for code in rule
            .codes
            .iter()
            .filter(|c| !crate::secrets::CODES.contains(&c.as_str()))
        {
            assert!(
                CASES.iter().any(|(_, c)| c.code == code.as_str()),
                "rule `{}`: {} has no case",
                rule.name,
                code.as_str()
            );
        }
    }
}

#[test]
fn every_code_a_rule_reports_is_listed_in_rules() {
    // The semantic cases' codes are exactly the codes the rules declare.
    let declared: Vec<&str> = pgimg::check::RULES
        .iter()
        .flat_map(|r| r.codes.iter().map(|c| c.as_str()))
        .collect();
    for (name, c) in CASES {
        let semantic = c.code >= "PG0100";
        assert_eq!(
            semantic,
            declared.contains(&c.code),
            "case {name}: {} is {}a semantic code but {}declared by a rule",
            c.code,
            if semantic { "" } else { "not " },
            if declared.contains(&c.code) {
                ""
            } else {
                "not "
            }
        );
    }
}

#[test]
fn unknown_key_suggests_the_closest_key() {
    let (name, c) = CASES
        .iter()
        .find(|(n, _)| *n == "pg0010_unknown_key")
        .unwrap_or_else(|| unreachable!());
    let d = check_case(name, c, false);
    assert_eq!(d.pointer, "/defaults/patroni/loop_wiat");
    assert!(
        d.expected
            .as_deref()
            .is_some_and(|e| e.contains("did you mean `loop_wait`?")),
        "no did-you-mean: {:?}",
        d.expected
    );
}

#[test]
fn unknown_standby_source_suggests_the_closest_site() {
    let (name, c) = CASES
        .iter()
        .find(|(n, _)| *n == "pg0140_unknown_source")
        .unwrap_or_else(|| unreachable!());
    let d = check_case(name, c, false);
    assert_eq!(d.help.as_deref(), Some("did you mean `east`?"));
}

#[test]
fn strict_turns_each_warning_into_an_error() {
    for (name, c) in CASES {
        let code = Code::parse(c.code).unwrap_or_else(|| unreachable!());
        if code.severity() != Severity::Warning {
            continue;
        }
        let d = check_case(name, c, true);
        assert_eq!(d.severity, Severity::Error, "case {name} with --strict");
    }
    // The warnings are exactly these.
    let warnings: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| c.severity() == Severity::Warning)
        .map(|c| c.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "PG0030", "PG0112", "PG0114", "PG0131", "PG0181", "PG0202", "PG0212", "PG0303",
            "PG0410", "PG0411", "PG0412"
        ]
    );
}

/// PG0004: one mutation that causes far more problems than a parse reports
/// gives the first 200 and one PG0004 at the first left out.
#[test]
fn pg0004_too_many_problems() {
    let text = base().replace(
        "    ttl: 30\n",
        &format!(
            "    ttl: 30\n{}",
            (0..300)
                .map(|i| format!("    unknown{i}: 1\n"))
                .collect::<String>()
        ),
    );
    let diags = support::diagnostics(BASE, &text, false);
    assert_eq!(
        diags.len(),
        201,
        "{}",
        show(&diags[diags.len().saturating_sub(3)..])
    );
    let more: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == Code::TooManyProblems)
        .collect();
    assert_eq!(more.len(), 1, "{}", show(&diags[..3]));
    let span = more[0]
        .span
        .unwrap_or_else(|| panic!("PG0004 without a position"));
    // The 201st unknown key sits on line 12 + 201 (keys start below `ttl`, line 11).
    assert_eq!((span.line, span.col), (212, 5), "{}", show(&diags[195..]));
    assert!(more[0].expected.is_some());
}
