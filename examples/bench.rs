//! Build-time benchmark: `cargo run --release --example bench [SIZES…]`.
//!
//! Generates fleets of 12, 100, 1,000, 10,000 and 30,000 hosts (clusters of
//! three PostgreSQL + etcd hosts and one HAProxy each), then runs the
//! release `pgimg build` on each as a child process, into a tmpfs
//! (`/dev/shm`) and onto disk (the system's temporary directory): a cold
//! build into a fresh directory, a no-op rebuild of the same spec, and a
//! rebuild after one host's setting changed. Prints the median of a few
//! runs: wall time, the CPU time of the cold build (steadier than wall time
//! on a busy machine), and the peak resident set of all of them (reported
//! by pgimg itself at exit).
//!
//! Beside them it prints the floor under a cold build of that output on
//! this machine: the time to create the same tree (the same directories,
//! and files of the same sizes) with nothing else to do, plus the time to
//! deflate its overlays with pgimg's own `gzip`, each spread over every
//! CPU. No build that writes this layout can be faster than their sum.
//! Each build and each floor starts after `sync`, so that none is charged
//! for writing back the tree before it. Each tree is removed before the
//! next is made: on ext4 without a journal, which will not reuse an inode
//! deleted in the last minute and scans past each such inode for every
//! new one (`recently_deleted` in the kernel's `fs/ext4/ialloc.c`), the
//! disk rows then include that scan.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const RUNS: usize = 3;

/// The fleet of `hosts` hosts; `changed` gives its first host one more setting.
fn spec(hosts: usize, changed: bool) -> String {
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
            let extra = if changed && c == 0 && h == 1 {
                ", settings: { os: { limits: { nofile: 200000 } } }"
            } else {
                ""
            };
            s.push_str(&format!(
                "          - {{ name: c{c}-pg{h}, address: {net}.{}, roles: [pg, etcd]{extra} }}\n",
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

/// One entry of an output tree: its path below the output, and its size
/// if it is a file.
type Entry = (PathBuf, Option<usize>);

/// The floor under a cold build of the output at `out`.
struct Floor {
    /// Creating its directories and files, on every CPU.
    files: Duration,
    /// Deflating its overlays, on every CPU: the busiest thread's time.
    deflate: Duration,
    directories: usize,
    regular_files: usize,
}

/// Runs `work` on each index below `count`, spread over every CPU, and
/// returns what each thread returned.
fn on_every_cpu<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<Vec<T>> {
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return done;
                        }
                        done.push(work(i));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a floor thread panicked"))
            .collect()
    })
}

/// Measures the floor of the output at `out`, then removes it: its overlays
/// are deflated again (each checked to give the very bytes pgimg wrote) and
/// its shape is read; with `out` gone, the same tree is made in `scratch`,
/// which is removed in turn. So both figures time the work pgimg does, and
/// no more than one tree of this size exists at a time.
fn floor(out: &Path, scratch: &Path) -> Floor {
    // The output's top (its first level) is made first; below it, each
    // host's, cluster's or secret bundle's subtree is one task.
    let mut top: Vec<Entry> = Vec::new();
    let mut subtrees: Vec<Vec<Entry>> = Vec::new();
    for entry in walkdir::WalkDir::new(out).min_depth(1).sort_by_file_name() {
        let entry = entry.expect("walking the output");
        let rel = entry
            .path()
            .strip_prefix(out)
            .expect("below the output")
            .to_path_buf();
        let size = entry
            .file_type()
            .is_file()
            .then(|| entry.metadata().expect("reading a file's size").len() as usize);
        match entry.depth() {
            1 => top.push((rel, size)),
            2 => subtrees.push(vec![(rel, size)]),
            _ => subtrees
                .last_mut()
                .expect("a subtree's root comes first")
                .push((rel, size)),
        }
    }

    let overlays: Vec<PathBuf> = subtrees
        .iter()
        .filter_map(|tree| {
            let (root, _) = &tree[0];
            root.starts_with("hosts")
                .then(|| out.join(root).join("overlay.tar.gz"))
        })
        .collect();
    let busy = on_every_cpu(overlays.len(), |i| {
        let written = std::fs::read(&overlays[i]).expect("reading an overlay");
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(written.as_slice())
            .read_to_end(&mut tar)
            .expect("inflating an overlay");
        let start = Instant::now();
        let deflated = pgimg::render::overlay::gzip(&tar);
        let took = start.elapsed();
        assert!(
            deflated == written,
            "{} is not what pgimg's gzip makes of it",
            overlays[i].display()
        );
        took
    });
    let deflate = busy
        .iter()
        .map(|thread| thread.iter().sum())
        .max()
        .unwrap_or_default();
    std::fs::remove_dir_all(out).expect("removing the measured tree");

    let all = || top.iter().chain(subtrees.iter().flatten());
    let directories = all().filter(|(_, size)| size.is_none()).count();
    let regular_files = all().count() - directories;
    let zeros = vec![0u8; all().filter_map(|(_, size)| *size).max().unwrap_or(0)];
    let make = |(rel, size): &Entry| {
        let path = scratch.join(rel);
        match size {
            None => std::fs::create_dir(&path),
            Some(n) => std::fs::write(&path, &zeros[..*n]),
        }
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    };
    let _ = std::fs::remove_dir_all(scratch);
    settle();
    let start = Instant::now();
    std::fs::create_dir(scratch).expect("creating the floor's directory");
    top.iter().for_each(make);
    on_every_cpu(subtrees.len(), |i| subtrees[i].iter().for_each(make));
    let files = start.elapsed();
    std::fs::remove_dir_all(scratch).expect("removing the floor's tree");
    Floor {
        files,
        deflate,
        directories,
        regular_files,
    }
}

/// Writes back what earlier runs left dirty, so that a build or a floor is
/// not charged for the writeback of the tree before it.
fn settle() {
    let status = Command::new("sync").status().expect("running sync");
    assert!(status.success(), "sync failed");
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
            vec![12, 100, 1_000, 10_000, 30_000]
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
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "pgimg build, median of {RUNS} runs, {} CPUs ({cpu_model})\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| target | hosts | cold build | floor: files + deflate | no-op rebuild | one host changed | CPU (user+sys), cold | CPU per host | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut targets: Vec<(&str, PathBuf)> = Vec::new();
    if Path::new("/dev/shm").is_dir() {
        targets.push(("tmpfs", PathBuf::from("/dev/shm")));
    }
    targets.push(("disk", std::env::temp_dir()));
    let mut shapes = Vec::new();
    for (kind, base) in &targets {
        let root: PathBuf = base.join(format!("pgimg-bench-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("creating the benchmark directory");
        for &n in &sizes {
            let hosts = n.div_ceil(4) * 4;
            let spec_path = root.join(format!("fleet-{hosts}.yml"));
            let out = root.join(format!("out-{hosts}"));
            let (mut cold, mut noop, mut one, mut cpu, mut peak) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
            for _ in 0..RUNS {
                let _ = std::fs::remove_dir_all(&out);
                std::fs::write(&spec_path, spec(n, false)).expect("writing the spec");
                settle();
                let r = build(&pgimg, &spec_path, &out);
                cold.push(r.wall);
                cpu.push(r.cpu);
                peak = peak.max(r.peak_kib);
                settle();
                let r = build(&pgimg, &spec_path, &out);
                noop.push(r.wall);
                peak = peak.max(r.peak_kib);
                std::fs::write(&spec_path, spec(n, true)).expect("writing the spec");
                settle();
                let r = build(&pgimg, &spec_path, &out);
                one.push(r.wall);
                peak = peak.max(r.peak_kib);
            }
            let (cold, noop, one, cpu) = (median(cold), median(noop), median(one), median(cpu));
            let floor = floor(&out, &root.join(format!("floor-{hosts}")));
            shapes.push((hosts, floor.directories, floor.regular_files));
            println!(
                "| {kind} | {hosts} | {:.0} ms | {:.0} + {:.0} = {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.3} ms | {:.1} MiB |",
                ms(cold),
                ms(floor.files),
                ms(floor.deflate),
                ms(floor.files + floor.deflate),
                ms(noop),
                ms(one),
                ms(cpu),
                ms(cpu) / hosts as f64,
                peak as f64 / 1024.0
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }
    shapes.sort_unstable();
    shapes.dedup();
    println!();
    for (hosts, directories, files) in shapes {
        println!("{hosts} hosts: {directories} directories and {files} files");
    }
}
