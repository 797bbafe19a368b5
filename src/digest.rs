//! sha256 as the output prints it: lowercase hex, like `sha256sum`. Used by
//! every stage that names content by its digest (the role tree's input
//! hash, the manifest, the install formats' checks).

use sha2::{Digest, Sha256};

/// The sha256 of `bytes`, in lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
