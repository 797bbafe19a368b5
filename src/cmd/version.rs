//! `pgimg --version`: the release, the commit it was built from and the hash
//! of the built-in role tree — what decides the bytes of a build besides the
//! spec. Shown to people only: artifacts record the release and the role
//! tree's hash (`manifest.json`), never the commit, so a rebuild from another
//! commit of the same tree stays byte-identical.

/// The commit pgimg was built from (`git rev-parse` at build time), or `unknown`.
pub const COMMIT: &str = env!("PGIMG_GIT_COMMIT");

/// The long version text: `0.1.0 (commit abc…, roles sha256:…)`.
pub fn long() -> String {
    format!(
        "{} (commit {COMMIT}, roles sha256:{})",
        env!("CARGO_PKG_VERSION"),
        crate::load::RoleTree::embedded().digest()
    )
}
