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

/// An artifact as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sum {
    pub sha256: String,
    pub size: u64,
}

impl Sum {
    pub fn of(bytes: &[u8]) -> Sum {
        Sum {
            sha256: sha256(bytes),
            size: bytes.len() as u64,
        }
    }
}
