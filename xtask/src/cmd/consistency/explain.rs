//! `cargo xtask consistency --resolve-only`: which GT file each case would be compared with, and
//! why, without loading a model. Skipped cases are resolved too (they are listed, never dropped).

use std::process::ExitCode;

use anyhow::Context;
use cases::Case;
use gt_resolver::{Answer, GtQuery, Platform, Resolution};
use serde::Serialize;

use super::settings::Settings;

/// The whole answer (`--resolve-only --json`).
#[derive(Debug, Serialize)]
pub struct ResolveReport {
    /// The GT root asked (an http(s) base or a folder), or the local override.
    pub gt_root: String,
    /// Its pinned commit, when the root names one.
    pub revision: Option<String>,
    /// The platform whose folder is tried first, and how it was decided.
    pub platform: String,
    pub platform_why: String,
    /// The threshold file(s) the run would hold the cases to.
    pub thresholds: String,
    pub cases: Vec<CaseResolution>,
}

/// One case's GT, as a run would pick it.
#[derive(Debug, Serialize)]
pub struct CaseResolution {
    pub id: String,
    /// The id GT is published under (upstream's case aliases; usually the id itself).
    pub gt_case: String,
    pub num_gpus: u32,
    pub output_format: String,
    /// `skip = "reason"` of the case file: listed, resolved, but not run.
    pub skipped: Option<String>,
    /// `official`, `sglang`, `legacy` or `none`.
    pub source: String,
    /// The chosen file relative to the GT root (`sglang_generated/h100/qwen_image_t2i_1gpu.jpg`).
    pub file: Option<String>,
    pub url: Option<String>,
    /// Why this file: what was absent before it, in upstream's order, and the resolver's notes.
    pub reason: String,
    /// How our output would be compared with it.
    pub compare: String,
    pub probes: Vec<ProbeLine>,
}

/// One existence check.
#[derive(Debug, Serialize)]
pub struct ProbeLine {
    /// Relative to the GT root when under it.
    pub file: String,
    pub answer: String,
    pub reason: String,
}

/// How a case's output is compared, as the compare path does it.
pub fn comparison(case: &Case) -> String {
    if case.output_format == "jpg" {
        "jpg: our output encoded as PIL's save(quality=75) and decoded back, against the GT \
         decoded as PIL decodes it (libjpeg-turbo)"
            .into()
    } else {
        format!(
            "{}: our output's pixels, against the GT decoded as PIL decodes it",
            case.output_format
        )
    }
}

/// `url` relative to `root` (`root/x` → `x`), else as is.
pub fn relative(url: &str, root: Option<&str>) -> String {
    root.and_then(|r| url.strip_prefix(r.trim_end_matches('/')))
        .and_then(|rest| rest.strip_prefix('/'))
        .map_or_else(|| url.to_string(), str::to_string)
}

/// The resolution of one case, explained.
pub fn explain(
    case: &Case,
    query: &GtQuery,
    resolution: &Resolution,
    root: Option<&str>,
) -> CaseResolution {
    let rel = |u: &str| relative(u, root);
    let order = format!(
        "upstream's order ({p}/ folder before bare names; official_generated/, when its \
         case_map.json declares the file, before sglang_generated/)",
        p = query.platform
    );
    let chosen = resolution.files.first();
    let mut reason = match chosen {
        None => format!("no candidate exists in {order}"),
        Some(file) => {
            let before: Vec<String> = resolution
                .probes
                .iter()
                .take_while(|p| p.url != file.url)
                .filter(|p| p.answer != Answer::Yes)
                .map(|p| match p.answer {
                    Answer::No => rel(&p.url),
                    _ => format!("{} {}", rel(&p.url), p.describe()),
                })
                .collect();
            let mut r = format!("first present candidate in {order}");
            if !before.is_empty() {
                r.push_str(&format!("; absent before it: {}", before.join(", ")));
            }
            r
        }
    };
    for n in &resolution.notes {
        reason.push_str("; ");
        reason.push_str(n);
    }
    CaseResolution {
        id: case.id.clone(),
        gt_case: query.case.clone(),
        num_gpus: case.num_gpus,
        output_format: case.output_format.clone(),
        skipped: case.skip.clone(),
        source: resolution.source.map_or("none", |s| s.as_str()).to_string(),
        file: chosen.map(|f| rel(&f.url)),
        url: chosen.map(|f| f.url.clone()),
        reason,
        compare: comparison(case),
        probes: resolution
            .probes
            .iter()
            .map(|p| ProbeLine {
                file: rel(&p.url),
                answer: p.answer.as_str().to_string(),
                reason: p.reason.clone(),
            })
            .collect(),
    }
}

/// The human-readable table: one block per case.
pub fn print(report: &ResolveReport) {
    println!(
        "GT root {}{}",
        report.gt_root,
        report
            .revision
            .as_deref()
            .map(|r| format!(" (pinned at {r})"))
            .unwrap_or_default()
    );
    println!("platform {} ({})", report.platform, report.platform_why);
    println!("thresholds {}", report.thresholds);
    for c in &report.cases {
        println!();
        let skip = c
            .skipped
            .as_deref()
            .map(|s| format!("  [skipped: {s}]"))
            .unwrap_or_default();
        println!("{}{skip}", c.id);
        match &c.file {
            Some(f) => println!("  GT      {} ({})", f, c.source),
            None => println!("  GT      none"),
        }
        println!("  why     {}", c.reason);
        println!("  compare {}", c.compare);
    }
}

/// `--resolve-only`: resolve every selected case (skipped ones too) and say which GT file it
/// would be compared with and why; no model is loaded. Exit 0 every case has GT, 1 some has
/// none, 2 the lookup could not run (see [`could_not_ask`]).
pub(super) fn resolve_only(s: &Settings) -> anyhow::Result<ExitCode> {
    let platform = s.platform;
    let (resolver, gt_root) = s.gt.resolver()?;
    // Files are shown relative to the folder or root they are in, so that a `--gt-dir` copy of
    // a root (`gt prefetch`) reads as the root does.
    let root_url = match (&s.gt.dir, &gt_root) {
        (Some(d), _) => Some(gt_resolver::Location::Local(d.clone()).url()),
        (None, Some(r)) => Some(r.base.url()),
        _ => None,
    };
    let queries: Vec<GtQuery> = s.cases.iter().map(|c| query_for(c, platform)).collect();
    let resolutions = resolver.resolve_many(&queries);
    let mut rows = Vec::new();
    let mut answered = Vec::new();
    for ((case, query), resolution) in s.cases.iter().zip(&queries).zip(resolutions) {
        let resolution = resolution.with_context(|| format!("resolving GT for {}", case.id))?;
        rows.push(explain(case, query, &resolution, root_url.as_deref()));
        answered.push(resolution);
    }
    let could_not_ask = could_not_ask(&answered);
    let thresholds = match &s.thresholds {
        None => "built-in defaults (upstream's code defaults)".to_string(),
        Some((base, None)) => base.display().to_string(),
        Some((base, Some(o))) => format!("{} overlaid with {}", base.display(), o.display()),
    };
    let report = ResolveReport {
        gt_root: match (&s.gt.dir, &gt_root) {
            (Some(d), _) => format!("{} (local override)", d.display()),
            (None, Some(r)) => r.base.url(),
            (None, None) => String::new(),
        },
        revision: gt_root.and_then(|r| r.revision),
        platform: platform.to_string(),
        platform_why: s.run_platform.why.clone(),
        thresholds,
        cases: rows,
    };
    if s.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    if let Some(why) = could_not_ask {
        eprintln!("error: {why}");
        return Ok(ExitCode::from(2));
    }
    Ok(if report.cases.iter().all(|c| c.file.is_some()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Why the GT host could not tell us anything, when it could not: a case whose candidates were
/// not asked at all (offline, nothing cached), or probes that all ended without an answer (no
/// network, the host refusing connections), so that every GT would be taken on trust. Either is
/// "could not run" (exit 2), never "every case has GT".
fn could_not_ask(resolutions: &[Resolution]) -> Option<String> {
    let unasked: Vec<String> = resolutions
        .iter()
        .filter_map(|r| r.clone().into_answered().err())
        .map(|e| e.to_string())
        .collect();
    if !unasked.is_empty() {
        return Some(unasked.join("\n"));
    }
    let asked: Vec<&gt_resolver::Probe> = resolutions
        .iter()
        .flat_map(|r| &r.probes)
        .filter(|p| p.attempts > 0 && gt_resolver::is_http_url(&p.url))
        .collect();
    if asked.is_empty() || asked.iter().any(|p| p.answer != Answer::Unknown) {
        return None;
    }
    let mut reasons: Vec<&str> = asked.iter().map(|p| p.reason.as_str()).collect();
    reasons.sort_unstable();
    reasons.dedup();
    Some(format!(
        "no request to the GT host succeeded ({} probe(s): {}): nothing confirms that any of \
         these GT files exists",
        asked.len(),
        reasons.join("; ")
    ))
}

/// The GT lookup of a case: under its upstream alias (`CONSISTENCY_GT_CASE_ALIASES`), for its
/// num_gpus and output format, platform folder first.
pub(super) fn query_for(case: &Case, platform: Platform) -> GtQuery {
    crate::prefetch::case_query(case, platform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_shown_relative_to_the_root() {
        let root = Some("https://host/r/abc/diffusion-ci/consistency_gt/");
        assert_eq!(
            relative(
                "https://host/r/abc/diffusion-ci/consistency_gt/sglang_generated/h100/x.jpg",
                root
            ),
            "sglang_generated/h100/x.jpg"
        );
        assert_eq!(relative("file:///gt/x.png", root), "file:///gt/x.png");
        assert_eq!(relative("file:///gt/x.png", None), "file:///gt/x.png");
    }
}
