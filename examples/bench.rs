//! Build-time benchmark: `cargo run --release --example bench [SIZES…]`.
//!
//! Generates fleets of 10, 100, 1,000 and 10,000 hosts (clusters of three
//! PostgreSQL + etcd hosts and one HAProxy each), then runs the release
//! `pgimg build` on each as a child process, into a tmpfs when there is one:
//! a cold build into a fresh directory, then a rebuild that replaces it.
//! Prints the median of a few runs: wall time, the CPU time of the pgimg
//! process (steadier than wall time on a busy machine), the cost per host,
//! and the peak resident set (reported by pgimg itself at exit).

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

/// One build's cost.
struct Run {
    wall: Duration,
    /// User + system CPU time of the pgimg process, all threads.
    cpu: Duration,
    /// Peak resident set in KiB.
    peak_kib: u64,
}

/// user + system time of a process that has exited but is not yet reaped,
/// from `/proc/<pid>/stat` (fields 14 and 15, in clock ticks of 1/100 s).
fn cpu_of_zombie(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() != Some(&"Z") {
        return None;
    }
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Runs one build as a child process.
fn build(pgimg: &Path, spec: &Path, out: &Path) -> Run {
    let start = Instant::now();
    let mut child = Command::new(pgimg)
        .arg("build")
        .arg(spec)
        .arg("-o")
        .arg(out)
        .env("PGIMG_REPORT_PEAK_RSS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running pgimg");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)
        .expect("reading pgimg's stderr");
    // stderr closes at exit; poll briefly until the process is a zombie,
    // whose CPU times are still readable, then reap it.
    let mut cpu = None;
    for _ in 0..2000 {
        cpu = cpu_of_zombie(child.id());
        if cpu.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let wall = start.elapsed();
    let status = child.wait().expect("waiting for pgimg");
    assert!(status.success(), "pgimg build failed:\n{stderr}");
    let peak_kib = stderr
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Run {
        wall,
        cpu: cpu.unwrap_or_default(),
        peak_kib,
    }
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
    println!(
        "| hosts | cold build | rebuild | cold, per host | CPU (user+sys), cold | CPU per host | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &sizes {
        let text = spec(n);
        let hosts = n.div_ceil(4) * 4;
        let spec_path = root.join(format!("fleet-{hosts}.yml"));
        std::fs::write(&spec_path, text).expect("writing the spec");
        let out = root.join(format!("out-{hosts}"));
        let (mut cold, mut rebuild, mut cpu, mut peak) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..RUNS {
            let _ = std::fs::remove_dir_all(&out);
            let r = build(&pgimg, &spec_path, &out);
            cold.push(r.wall);
            cpu.push(r.cpu);
            peak = peak.max(r.peak_kib);
            let r = build(&pgimg, &spec_path, &out);
            rebuild.push(r.wall);
            peak = peak.max(r.peak_kib);
        }
        let (cold, rebuild, cpu) = (median(cold), median(rebuild), median(cpu));
        println!(
            "| {hosts} | {:.0} ms | {:.0} ms | {:.3} ms | {:.0} ms | {:.3} ms | {:.1} MiB |",
            ms(cold),
            ms(rebuild),
            ms(cold) / hosts as f64,
            ms(cpu),
            ms(cpu) / hosts as f64,
            peak as f64 / 1024.0
        );
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_dir_all(&root);
}
