//! The rendered secrets delivery, run for real: `fetch-secrets` of a pg
//! host, with bash, curl (SigV4) and python3, against a loopback stand-in
//! for the instance metadata service, SSM Parameter Store and the HTTPS
//! bundle server, all pointed at by the spec. What it installs must be the
//! build's `secrets/<host>/` byte for byte, with the contract's modes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::tools::{self, Guard};

/// The stand-in: IMDSv2 (token required), SSM `GetParameter` (SigV4 header
/// with the stand-in's key, region and service, and the session token
/// required) and static files. Prints its port, then serves until killed.
const STAND_IN: &str = r#"
import http.server, json, sys
values = json.load(open(sys.argv[1]))
files = sys.argv[2]
TOKEN, KEY, SESSION = "imds-token", "AKIDSTANDIN", "SESSION-STANDIN"
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(code); self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, TOKEN, "text/plain")
        self.reply(400, "bad token request")
    def do_GET(self):
        if self.path.startswith("/latest/meta-data/"):
            if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                return self.reply(401, "no token")
            md = {"placement/region": "eu-west-1", "iam/security-credentials/": "pgimg-role",
                  "iam/security-credentials/pgimg-role": json.dumps({"AccessKeyId": KEY, "SecretAccessKey": "standin-secret", "Token": SESSION})}
            key = self.path[len("/latest/meta-data/"):]
            return self.reply(200, md[key], "text/plain") if key in md else self.reply(404, "no")
        if self.path.startswith("/bundles/"):
            try:
                return self.reply(200, open(files + self.path[len("/bundles"):], "rb").read(), "application/gzip")
            except OSError:
                return self.reply(404, "no bundle")
        self.reply(404, "no")
    def do_POST(self):
        auth = self.headers.get("Authorization", "")
        ok = (auth.startswith("AWS4-HMAC-SHA256 Credential=" + KEY + "/") and "/eu-west-1/ssm/aws4_request" in auth
              and self.headers.get("x-amz-security-token") == SESSION
              and self.headers.get("X-Amz-Target") == "AmazonSSM.GetParameter")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if not ok or body.get("WithDecryption") is not True:
            return self.reply(403, '{"__type":"AccessDeniedException"}')
        name = body.get("Name")
        if name not in values:
            return self.reply(400, '{"__type":"ParameterNotFound"}')
        self.reply(200, json.dumps({"Parameter": {"Name": name, "Type": "SecureString", "Value": values[name]}}))
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

const HOST: &str = "pg1";

const VALUES: &[(&str, &str)] = &[
    ("PGIMG_SUPERUSER_PASSWORD", "Delivery-Super-1"),
    ("PGIMG_REPLICATION_PASSWORD", "Delivery-Repl-2"),
    ("PGIMG_REWIND_PASSWORD", "Delivery-Rewind-3"),
    ("PGIMG_RESTAPI_PASSWORD", "Delivery-Rest-4"),
    ("PGIMG_BACKUP_CIPHER_PASS", "Delivery-Cipher-5"),
    ("PGIMG_S3_KEY", "Delivery-S3-Key-6"),
    ("PGIMG_S3_KEY_SECRET", "Delivery-S3-Secret-7"),
];

fn start_stand_in(dir: &Path) -> (Guard, u16) {
    let python = tools::tool("python3").unwrap_or_else(|e| panic!("{e}"));
    let values: BTreeMap<String, &str> = VALUES
        .iter()
        .map(|(k, v)| (format!("/pgimg/pg_cluster/{k}"), *v))
        .collect();
    std::fs::write(
        dir.join("values.json"),
        serde_json::to_string(&values).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("stand_in.py"), STAND_IN).unwrap();
    let mut child = Guard::new(
        Command::new(python)
            .arg(dir.join("stand_in.py"))
            .arg(dir.join("values.json"))
            .arg(dir.join("served"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the stand-in"),
    );
    let stdout = child.child().stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line.trim().parse().expect("the stand-in's port");
    (child, port)
}

/// The reference example with delivery pointed at the stand-in, built with every secret supplied.
fn build(port: u16) -> pgimg::render::ArtifactTree {
    let text = std::fs::read_to_string(crate::reference()).unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    // The example's own delivery, pointed at the stand-in: the spec is what overrides endpoints.
    for from in ["ssm: {}", "https://secrets.example.com/pgimg"] {
        assert!(text.contains(from), "the reference example lacks `{from}`");
    }
    let text = text
        .replacen(
            "ssm: {}",
            &format!("ssm: {{ region: eu-west-1, endpoint: '{endpoint}', metadata_endpoint: '{endpoint}' }}"),
            1,
        )
        .replacen("https://secrets.example.com/pgimg", &format!("{endpoint}/bundles"), 1)
        // The password files only: TLS (its PEM files and the etcd logins) off here.
        .replacen("  delivery:\n", "  tls: { enabled: false }\n  delivery:\n", 1);
    let v = pgimg::validate(pgimg::source::SourceFile::new("spec.yml", text), false)
        .unwrap_or_else(|d| panic!("{d:#?}"));
    let mut secrets = pgimg::load::SecretValues::default();
    for (k, val) in VALUES {
        secrets.values.insert(format!("env:{k}"), val.to_string());
    }
    pgimg::build(
        &v,
        &pgimg::BuildInputs {
            roles: pgimg::load::RoleTree::embedded(),
            secrets,
            mapping: Default::default(),
            overlays: Default::default(),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A host root holding only what fetch-secrets reads.
fn host_root(tree: &pgimg::render::ArtifactTree, dir: &Path) -> std::path::PathBuf {
    let root = dir.join("root");
    for rel in [
        "etc/pgimg/secrets.conf",
        "usr/local/libexec/pgimg/fetch-secrets",
    ] {
        let a = &tree.files[&format!("hosts/{HOST}/rootfs/{rel}")];
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &a.bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(a.mode)).unwrap();
    }
    root
}

fn fetch(root: &Path, args: &[&str]) -> tools::Output {
    let bash = tools::tool("bash").unwrap_or_else(|e| panic!("{e}"));
    tools::run(
        Command::new(bash)
            .arg(root.join("usr/local/libexec/pgimg/fetch-secrets"))
            .args(args)
            .env("PGIMG_ROOT", root)
            .env("PGIMG_SECRETS_ATTEMPTS", "2")
            .env("PGIMG_SECRETS_DELAY", "0"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Every secret file of the build is installed, identical, with the contract's mode.
fn assert_delivered(tree: &pgimg::render::ArtifactTree, root: &Path, how: &str) {
    let prefix = format!("secrets/{HOST}/");
    // The contract's modes, from the instructions fetch-secrets follows.
    let conf = &tree.files[&format!("hosts/{HOST}/rootfs/etc/pgimg/secrets.conf")].bytes;
    let modes: std::collections::BTreeMap<String, u32> = String::from_utf8_lossy(conf)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["file", path, _, _, mode, ..] => Some((
                    path.trim_start_matches('/').to_string(),
                    u32::from_str_radix(mode, 8).ok()?,
                )),
                _ => None,
            }
        })
        .collect();
    let mut n = 0;
    for (path, a) in tree.files.range(prefix.clone()..) {
        let Some(rel) = path.strip_prefix(&prefix) else {
            break;
        };
        let installed = root.join(rel);
        let bytes = std::fs::read(&installed)
            .unwrap_or_else(|e| panic!("{how}: {} not installed: {e}", installed.display()));
        assert!(bytes == a.bytes, "{how}: {rel} differs from the build's");
        let mode = std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777;
        assert_eq!(Some(&mode), modes.get(rel), "{how}: {rel} mode");
        n += 1;
    }
    assert_eq!(n, 3, "{how}: patroni.env, pgbackrest.env and .pgpass");
}

#[test]
fn fetch_secrets_installs_the_build_secrets_from_ssm_and_from_the_https_bundle() {
    let tmp = crate::tempdir();
    std::fs::create_dir_all(tmp.path().join("served")).unwrap();
    let (mut server, port) = start_stand_in(tmp.path());
    let tree = build(port);
    std::fs::write(
        tmp.path().join("served").join(format!("{HOST}.tar.gz")),
        &tree.files[&format!("secrets/{HOST}.tar.gz")].bytes,
    )
    .unwrap();
    let sum = String::from_utf8(
        tree.files[&format!("secrets/{HOST}.tar.gz.sha256")]
            .bytes
            .clone(),
    )
    .unwrap();
    let sha = sum.split_whitespace().next().unwrap().to_string();

    let ssm_root = host_root(&tree, &tmp.path().join("ssm"));
    let out = fetch(&ssm_root, &["ssm"]);
    assert!(out.success(), "fetch-secrets ssm: {}", out.report());
    assert_delivered(&tree, &ssm_root, "ssm");

    let https_root = host_root(&tree, &tmp.path().join("https"));
    let out = fetch(&https_root, &["https", &sha]);
    assert!(out.success(), "fetch-secrets https: {}", out.report());
    assert_delivered(&tree, &https_root, "https");

    // A bundle that does not match its digest installs nothing.
    let bad_root = host_root(&tree, &tmp.path().join("bad"));
    let out = fetch(&bad_root, &["https", &"0".repeat(64)]);
    assert!(!out.success(), "a wrong digest was accepted");
    assert!(
        out.text().contains("does not match its sha256"),
        "{}",
        out.report()
    );
    assert!(!bad_root.join("etc/patroni/patroni.env").exists());

    // Without the SSM parameters (another prefix), it gives up after its bounded attempts.
    let missing_root = host_root(&tree, &tmp.path().join("missing"));
    let conf = missing_root.join("etc/pgimg/secrets.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("ssm_prefix /pgimg/pg_cluster", "ssm_prefix /elsewhere"),
    )
    .unwrap();
    let out = fetch(&missing_root, &["ssm"]);
    assert!(!out.success());
    assert!(
        out.text().contains("giving up after 2 attempts"),
        "{}",
        out.report()
    );
    assert!(!missing_root.join("etc/patroni/patroni.env").exists());

    // No value in anything fetch-secrets printed.
    for o in [&out] {
        for (_, v) in VALUES {
            assert!(!o.text().contains(v));
        }
    }
    server.stop();
}
