//! Which cases a run takes. The case file itself (schema and validation) is
//! the `cases` crate, shared with the end-to-end tests.

use anyhow::Context;
use cases::Case;

/// `K/N` (1-based K): the stable subset of cases a CI shard runs. Cases are ordered by id and
/// dealt round-robin, so adding a case moves few others.
pub fn partition(cases: Vec<Case>, spec: &str) -> anyhow::Result<Vec<Case>> {
    let (k, n) = spec
        .split_once('/')
        .and_then(|(k, n)| {
            Some((
                k.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        })
        .filter(|&(k, n)| n >= 1 && (1..=n).contains(&k))
        .with_context(|| format!("--partition `{spec}`: expected K/N with 1 ≤ K ≤ N, e.g. 2/4"))?;
    let mut sorted = cases;
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(sorted
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % n == k - 1)
        .map(|(_, c)| c)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn partitions_are_stable_and_cover_everything() {
        let all =
            cases::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/cases/tiny.toml"))
                .unwrap();
        let mut seen: Vec<String> = (1..=3)
            .flat_map(|k| partition(all.clone(), &format!("{k}/3")).unwrap())
            .map(|c| c.id)
            .collect();
        seen.sort();
        let mut ids: Vec<String> = all.iter().map(|c| c.id.clone()).collect();
        ids.sort();
        assert_eq!(seen, ids);
        assert!(partition(all, "0/2").is_err());
    }
}
