//! The tz database's zone and link names, from `data/tz-names.txt` (how to
//! regenerate it is in its header).

use std::collections::BTreeSet;
use std::sync::OnceLock;

pub(crate) const TZ_NAMES: &str = include_str!("../../data/tz-names.txt");

fn names() -> &'static BTreeSet<&'static str> {
    static NAMES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        TZ_NAMES
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// True for a name of the tz database (a zone or a link such as `UTC`).
pub(crate) fn is_known(name: &str) -> bool {
    names().contains(name)
}

/// Up to `n` names closest to `name`, for a hint.
pub(crate) fn closest(name: &str, n: usize) -> Vec<&'static str> {
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = names()
        .iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(s, _)| *s > 0.85)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn knows_zones_and_links_only() {
        assert!(super::is_known("UTC"));
        assert!(super::is_known("Europe/Berlin"));
        assert!(super::is_known("America/Argentina/Buenos_Aires"));
        assert!(!super::is_known("Europe/Berln"));
        assert!(!super::is_known("Mars/Olympus"));
        assert_eq!(super::closest("Europe/Berln", 1), vec!["Europe/Berlin"]);
    }
}
