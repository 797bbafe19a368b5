//! Embeds `roles/` and `kickstart/` into the binary, so an installed pgimg needs no checkout.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = String::from(
        "/// Every file under `roles/` and `kickstart/`, sorted by path.\npub static EMBEDDED_ROLES: &[(&str, &[u8])] = &[\n",
    );
    let mut entries = Vec::new();
    for top in ["roles", "kickstart"] {
        let dir = root.join(top);
        println!("cargo:rerun-if-changed={}", dir.display());
        if !dir.is_dir() {
            continue;
        }
        for entry in walkdir::WalkDir::new(&dir).sort_by_file_name() {
            let entry = entry.expect("walking the role tree");
            println!("cargo:rerun-if-changed={}", entry.path().display());
            if entry.file_type().is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(root.join("roles"))
                    .unwrap_or(entry.path().strip_prefix(root).expect("inside the crate"));
                let rel = rel.to_str().expect("UTF-8 path").replace('\\', "/");
                entries.push((rel, entry.path().to_path_buf()));
            }
        }
    }
    entries.sort();
    for (rel, abs) in entries {
        let _ = writeln!(
            out,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        );
    }
    out.push_str("];\n");
    commit(root);
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_roles.rs");
    std::fs::write(dest, out).expect("writing embedded_roles.rs");
}

/// The commit for `pgimg --version`, or "unknown" outside a git checkout (a
/// source tarball, `cargo install` from a registry) or without git.
fn commit(root: &Path) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PGIMG_GIT_COMMIT={commit}");
    // Rerun when HEAD moves: a commit, a checkout, a merge.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for file in ["HEAD", "logs/HEAD"] {
            let path = Path::new(&dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
