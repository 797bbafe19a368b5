//! Build-time benchmark: `cargo run --release --example bench [SIZES…]`.
//!
//! Generates fleets of 10, 100, 1,000 and 10,000 hosts (clusters of three
//! PostgreSQL + etcd hosts and one HAProxy each), then runs the release
//! `pgimg build` on each as a child process, into a tmpfs when there is one:
//! a cold build into a fresh directory, then a rebuild that replaces it.
//! Prints the median of a few runs, the cost per host and the peak resident
//! set of the pgimg process (reported by pgimg itself at exit).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 3;

fn spec(hosts: usize) -> String {
    let clusters = hosts.div_ceil(4);
    let mut s = String::from(
        "version: 1\n\
         secrets:\n\
         \x20 superuser_password: { env: BENCH_SUPERUSER_PASSWORD }\n\
         \x20 replication_password: { env: BENCH_REPLICATION_PASSWORD }\n\
         \x20 rewind_password: { env: BENCH_REWIND_PASSWORD }\n\
         defaults:\n\
         \x20 network: { domain: bench.example.net }\n\
         \x20 pgbackrest:\n\
         \x20   repos: [{ type: s3, bucket: bench-backups, region: eu-central-1 }]\n\
         clusters:\n",
    );
    for c in 0..clusters {
        let net = format!("10.{}.{}", c / 250, c % 250);
        s.push_str(&format!(
            "  - name: c{c}\n    sites:\n      - name: main\n        hosts:\n"
        ));
        for h in 1..=3 {
            s.push_str(&format!(
                "          - {{ name: c{c}-pg{h}, address: {net}.{}, roles: [pg, etcd] }}\n",
                10 + h
            ));
        }
        s.push_str(&format!(
            "          - {{ name: c{c}-lb, address: {net}.5, roles: [haproxy] }}\n"
        ));
    }
    s
}

/// Runs one build; returns its wall time and peak RSS in KiB.
fn build(pgimg: &Path, spec: &Path, out: &Path) -> (Duration, u64) {
    let start = Instant::now();
    let o = Command::new(pgimg)
        .arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .env("PGIMG_REPORT_PEAK_RSS", "1")
        .output()
        .expect("running pgimg");
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "pgimg build failed:\n{stderr}");
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (elapsed, peak)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let sizes: Vec<usize> = {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .map(|a| a.parse().expect("sizes are host counts"))
            .collect();
        if args.is_empty() {
            vec![10, 100, 1_000, 10_000]
        } else {
            args
        }
    };
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--bin", "pgimg"])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building pgimg failed");
    let pgimg = std::env::current_exe()
        .expect("locating the benchmark")
        .parent()
        .and_then(Path::parent)
        .expect("target/release/examples")
        .join("pgimg");
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let root: PathBuf = base.join(format!("pgimg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("creating the benchmark directory");
    println!(
        "pgimg build, median of {RUNS} runs, into {} ({} CPUs)\n",
        base.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| hosts | cold build | rebuild | per host (cold) | peak RSS |");
    println!("|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let text = spec(n);
        let hosts = n.div_ceil(4) * 4;
        let spec_path = root.join(format!("fleet-{hosts}.yml"));
        std::fs::write(&spec_path, text).expect("writing the spec");
        let out = root.join(format!("out-{hosts}"));
        let (mut cold, mut rebuild, mut peak) = (Vec::new(), Vec::new(), 0);
        for _ in 0..RUNS {
            let _ = std::fs::remove_dir_all(&out);
            let (t, p) = build(&pgimg, &spec_path, &out);
            cold.push(t);
            peak = peak.max(p);
            let (t, p) = build(&pgimg, &spec_path, &out);
            rebuild.push(t);
            peak = peak.max(p);
        }
        let (cold, rebuild) = (median(cold), median(rebuild));
        println!(
            "| {hosts} | {:.1} ms | {:.1} ms | {:.3} ms | {:.1} MiB |",
            ms(cold),
            ms(rebuild),
            ms(cold) / hosts as f64,
            peak as f64 / 1024.0
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_dir_all(&root);
}
