//! `--gen-gt`: each output written as GT in upstream's tree layout
//! (`OUT/gt/sglang_generated/<id>_<n>gpu.<ext>`) with a manifest of how it was made.

use std::path::Path;

use cases::Case;
use sha2::{Digest, Sha256};

use super::report::{CaseReport, GtFileReport};
use super::settings::Settings;
use super::target::Produced;
use crate::util::{repo_root, save_image, write_atomic};

/// The image as `OUT/gt/sglang_generated/<id>_<n>gpu.<ext>`, and its manifest entry.
pub(super) fn write_gt(
    case: &Case,
    g: &Produced,
    s: &Settings,
) -> anyhow::Result<serde_json::Value> {
    let name = gt_file_name(case);
    let path = s.out.join("gt/sglang_generated").join(&name);
    if g.raw_answer {
        // A server's answer is its output file: written as GT byte for byte.
        write_atomic(&path, &std::fs::read(s.out.join(&g.output_rel))?)?;
    } else {
        save_image(&g.image, &path)?;
    }
    let bytes = std::fs::read(&path)?;
    Ok(serde_json::json!({
        "case": case.id,
        "file": name,
        "sha256": hex::encode(Sha256::digest(&bytes)),
        "prompt": case.prompt,
        "negative_prompt": case.negative_prompt,
        "true_cfg_scale": case.true_cfg_scale,
        "guidance_scale": case.guidance_scale,
        "height": g.height,
        "width": g.width,
        "num_inference_steps": case.num_inference_steps,
        "seed": case.seed,
        "generator": case.initial_latents_on(s.cuda_layout).generator(),
        "latents_sha256": case.latents.as_ref().and_then(|p| std::fs::read(p).ok()).map(|b| hex::encode(Sha256::digest(b))),
        "model": case.model,
        "model_revision": model_revision(&case.model),
    }))
}

fn gt_file_name(case: &Case) -> String {
    format!("{}_{}gpu.{}", case.id, case.num_gpus, case.output_format)
}

/// The report line of a case whose GT was written.
pub(super) fn written_report(case: &Case, g: &Produced, s: &Settings) -> CaseReport {
    let name = gt_file_name(case);
    let url = s.out.join("gt/sglang_generated").join(&name);
    CaseReport {
        passed: true,
        gt_source: "generated".into(),
        gt_files: vec![GtFileReport {
            name,
            url: url.display().to_string(),
        }],
        timings: g.timings.clone(),
        output: Some(g.output_rel.clone()),
        inputs: g.inputs_rel.clone(),
        ..CaseReport::for_run(case, s.cuda_layout)
    }
}

fn model_revision(model: &str) -> String {
    if Path::new(model).is_dir() {
        format!("local folder {model}")
    } else {
        format!("{model}@main")
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `OUT/gt/manifest.json`: who made the GT, on what, and each case's entry.
pub(super) fn write_manifest(s: &Settings, cases: &[serde_json::Value]) -> anyhow::Result<()> {
    let doc = serde_json::json!({
        "generator": "qwen-image-rs",
        "git_commit": git_commit(),
        "device": s.device_label,
        "crate_versions": {"xtask": env!("CARGO_PKG_VERSION")},
        "cases": cases,
    });
    let path = s.out.join("gt/manifest.json");
    write_atomic(&path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    eprintln!(
        "wrote GT for {} case(s) under {} (tree layout: sglang_generated/<case>_<n>gpu.<ext>) and {}",
        cases.len(),
        s.out.join("gt").display(),
        path.display()
    );
    Ok(())
}
