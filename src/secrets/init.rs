//! `pgimg secrets init`: what to create for every referenced secret that is
//! missing. Pure: the random bytes come in, the plan goes out; `write`
//! creates the files and never overwrites one.

use super::{Generate, Problem, Reading, Reference};
use crate::spec::v1::SecretRef;

/// Characters of generated passwords: letters and digits carry unquoted
/// through environment files, `.pgpass`, pgBackRest's options and URLs.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of generated passwords: 32 of 62 characters is over 190 bits.
pub(crate) const PASSWORD_LEN: usize = 32;

/// Random bytes needed per generated password, with room for rejections.
pub(crate) const RANDOM_BYTES_PER_PASSWORD: usize = PASSWORD_LEN * 4;

/// A password from random bytes, by rejection sampling (no modulo bias).
/// `None` when the bytes ran out, which 128 bytes for 32 characters make
/// vanishingly unlikely (each byte is kept with probability 248/256).
pub(crate) fn password(random: &[u8]) -> Option<String> {
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let out: String = random
        .iter()
        .filter(|b| **b < limit)
        .take(PASSWORD_LEN)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    (out.len() == PASSWORD_LEN).then_some(out)
}

/// What `init` does about one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Create the file (relative to the spec's directory unless absolute).
    CreateFile { label: String, path: String },
    /// Add `NAME=value` to the environment file.
    AddToEnvFile { label: String, name: String },
    /// Present and usable: nothing to do.
    Present { label: String },
    /// Missing, but not something a random value can stand for (S3 keys).
    SupplyYourself { label: String, what: &'static str },
    /// There but unusable: init never overwrites, so the user must fix it.
    Unusable { label: String, problem: Problem },
}

/// The steps for every distinct reference, in spec order.
pub(crate) fn plan(refs: &[Reference], reading: &Reading) -> Vec<Step> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    // Certificates and keys are made together, CA first (the `certs` module,
    // through `secret_ops::init_tls`), not one reference at a time.
    for r in refs.iter().filter(|r| r.generate != Some(Generate::Tls)) {
        let label = r.label();
        if !seen.insert(label.clone()) {
            continue;
        }
        let step = match (reading.problems.get(&label), r.generate, &r.secret) {
            (None, _, _) => Step::Present { label },
            (Some(Problem::Missing), Some(Generate::Password), SecretRef::File(f)) => {
                Step::CreateFile {
                    label,
                    path: f.to_string(),
                }
            }
            (Some(Problem::Missing), Some(Generate::Password), SecretRef::Env(n)) => {
                Step::AddToEnvFile {
                    label,
                    name: n.to_string(),
                }
            }
            (Some(Problem::Missing), None, _) => Step::SupplyYourself {
                label,
                what: r.what,
            },
            (Some(p), _, _) => Step::Unusable {
                label,
                problem: p.clone(),
            },
        };
        out.push(step);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_use_only_the_alphabet_and_reject_biased_bytes() {
        let bytes: Vec<u8> = (0..=255u8)
            .cycle()
            .take(RANDOM_BYTES_PER_PASSWORD)
            .collect();
        let p = password(&bytes).expect("enough bytes");
        assert_eq!(p.len(), PASSWORD_LEN);
        assert!(p.bytes().all(|b| ALPHABET.contains(&b)));
        // Bytes 248..=255 would bias the first characters; they are skipped.
        assert_eq!(password(&[250u8; 200]), None);
    }
}
