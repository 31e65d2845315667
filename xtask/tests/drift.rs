//! The runner remembers (issue 28, items 1 and 2): every case's margin to its thresholds (equal to
//! the threshold passes, a near miss), report.json saying what it judged, and `--baseline`: a
//! planted drift flagged on its case alone, failing only with `--fail-on-drift`, and a baseline
//! that judged something else refused unless `--baseline-any`.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{case, report, stderr, testdata, xtask};

const CASES: [&str; 2] = ["tiny_t2i_cfg", "tiny_t2i_nocfg"];

/// The two tiny text-to-image cases with the tiny CLIP, into `out`, plus `extra`.
fn run(cases: &[&str], out: &Path, extra: &[&str]) -> Output {
    let mut c = xtask();
    c.arg("consistency")
        .arg("--cases")
        .arg(testdata().join("cases/tiny.toml"))
        .arg("--clip-model")
        .arg(testdata().join("metrics/tiny-clip"))
        .arg("--gt-root")
        .arg(testdata().join("gt"))
        .arg("--out")
        .arg(out);
    for id in cases {
        c.args(["--case", id]);
    }
    c.args(extra).output().unwrap()
}

/// A first run, copied to `dir/baseline` with `edit` applied to its report.json.
fn baseline(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let first = dir.join("first");
    let o = run(&CASES, &first, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let base = dir.join("baseline");
    for id in CASES {
        let to = base.join("cases").join(id);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(
            first.join("cases").join(id).join("output.png"),
            to.join("output.png"),
        )
        .unwrap();
    }
    let mut r = report(&first);
    edit(&mut r);
    let path = base.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
    path
}

#[test]
fn report_json_says_what_it_judged_and_each_cases_margins() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = run(&CASES, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(&out);
    let case_file = testdata().join("cases/tiny.toml");
    assert_eq!(r["case_file"]["path"], case_file.display().to_string());
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&case_file).unwrap()))
    };
    assert_eq!(r["case_file"]["sha256"], sha);
    assert_eq!(
        r["target"],
        serde_json::json!({"kind": "in_process", "device": "cpu", "dtype": "f32"})
    );
    assert_eq!(r["gt_platform"], "h100");
    assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
    for id in CASES {
        let c = case(&r, id);
        let (m, t, g) = (&c["metrics"][0], &c["thresholds"], &c["margins"]);
        // serde_json's parser may be one ulp off (no float_roundtrip): compare closely.
        let f = |v: &serde_json::Value| v.as_f64().unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(f(&g["clip"]), f(&m["clip"]) - f(&t["clip"])), "{id}");
        assert!(close(f(&g["ssim"]), f(&m["ssim"]) - f(&t["ssim"])), "{id}");
        let mad = f(&t["mean_abs_diff"]) - f(&m["mean_abs_diff"]);
        assert!(close(f(&g["mean_abs_diff"]), mad), "{id}");
        // The tiny cases reproduce their GT exactly: an infinite PSNR, an infinite margin.
        assert_eq!((&m["psnr"], &g["psnr"]), (&"inf".into(), &"inf".into()));
        assert_eq!(c["near_miss"], false);
        assert_eq!(c["drifted"], false);
    }
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("margin") && table.contains("+inf"),
        "{table}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("class=\"margin\"") && html.contains("margins: clip +"));
}

/// Thresholds equal to the measured values pass (upstream's `>=` / `<=`), with margins of exactly
/// 0, and the case is a near miss under `--near-miss` limits in the metrics' units (the default,
/// 10 % of the room a threshold leaves, is 0 at SSIM 1 and a mean difference of 0). The tiny case
/// reproduces its GT (SSIM 1, mean absolute difference 0: values JSON carries exactly; CLIP is
/// left out, its value would not survive a JSON round trip to the last bit).
#[test]
fn a_metric_equal_to_its_threshold_passes_as_a_near_miss() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let o = run(&CASES[..1], &first, &["--no-clip"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = case(&report(&first), CASES[0])["metrics"][0].clone();
    assert_eq!(
        (m["ssim"].as_f64(), m["mean_abs_diff"].as_f64()),
        (Some(1.0), Some(0.0))
    );
    let thresholds = dir.path().join("edges.json");
    let edges = serde_json::json!({"cases": {CASES[0]: {
        "ssim_threshold": 1.0,
        "psnr_threshold": 28.0,
        "mean_abs_diff_threshold": 0.0,
    }}});
    std::fs::write(&thresholds, edges.to_string()).unwrap();
    let th = thresholds.to_str().unwrap();

    let out = dir.path().join("edges");
    let limits = "ssim=0.001,mean_abs_diff=0.1";
    let o = run(
        &CASES[..1],
        &out,
        &["--no-clip", "--thresholds", th, "--near-miss", limits],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(&out);
    let c = case(&r, CASES[0]);
    assert_eq!(c["passed"], true);
    assert_eq!(
        c["margins"],
        serde_json::json!({"clip": null, "ssim": 0.0, "psnr": "inf", "mean_abs_diff": 0.0})
    );
    assert_eq!(c["near_miss"], true);
    assert_eq!(r["near_misses"], 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("near miss"));

    let limits = "clip=0,ssim=0,psnr=0,mean_abs_diff=0";
    let o = run(
        &CASES[..1],
        &out,
        &["--thresholds", th, "--near-miss", limits],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(case(&report(&out), CASES[0])["near_miss"], false);
}

/// One case's metrics moved in the baseline: that case alone is drifted (passing still), its
/// baseline output is shown beside today's, and only `--fail-on-drift` makes that exit 1.
#[test]
fn a_planted_drift_is_flagged_on_that_case_alone_and_fails_only_with_fail_on_drift() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path(), |r| {
        for c in r["cases"].as_array_mut().unwrap() {
            if c["id"] == CASES[1] {
                c["metrics"][0]["ssim"] = 0.97.into();
            }
        }
    });
    let base = base.to_str().unwrap();
    let out = dir.path().join("out");
    let o = run(&CASES, &out, &["--baseline", base]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(&out);
    assert_eq!(
        (r["passed"].as_u64(), r["drifted"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(r["baseline"]["report"], base);
    let (steady, moved) = (case(&r, CASES[0]), case(&r, CASES[1]));
    assert_eq!(
        (steady["drifted"].clone(), moved["drifted"].clone()),
        (false.into(), true.into())
    );
    assert_eq!(
        steady["deltas"]["psnr"], 0.0,
        "inf on both sides is no move"
    );
    assert_eq!(steady["deltas"]["ssim"], 0.0);
    assert!((moved["deltas"]["ssim"].as_f64().unwrap() - 0.03).abs() < 1e-9);
    assert_eq!(
        moved["baseline_output"],
        format!("cases/{}/baseline_output.png", CASES[1])
    );
    assert!(
        out.join(format!("cases/{}/baseline_output.png", CASES[1]))
            .is_file()
    );
    assert!(
        !out.join(format!("cases/{}/baseline_output.png", CASES[0]))
            .exists()
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    let section = |id: &str| {
        let s = &html[html.find(&format!("id=\"case-{id}\"")).unwrap()..];
        s[..s.find("</section>").unwrap()].to_string()
    };
    assert!(section(CASES[1]).contains("alt=\"baseline output\""));
    assert!(!section(CASES[0]).contains("alt=\"baseline output\""));

    let o = run(&CASES, &out, &["--baseline", base, "--fail-on-drift"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // The steady case alone does not drift.
    let o = run(&CASES[..1], &out, &["--baseline", base, "--fail-on-drift"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A wider tolerance takes the move in.
    let o = run(
        &CASES,
        &out,
        &[
            "--baseline",
            base,
            "--fail-on-drift",
            "--drift-tolerance",
            "ssim=0.05",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A baseline that judged another case file or platform, or does not say, is refused with the
/// reason (exit 2, before any case runs) unless `--baseline-any`, which records what differed; a
/// baseline in the run's own output folder is refused (the run would replace it).
#[test]
fn a_baseline_of_something_else_is_refused_unless_baseline_any() {
    let dir = tempfile::tempdir().unwrap();
    let base = baseline(dir.path(), |_| {});
    let out = dir.path().join("out");
    let refused = |extra: &[&str], why: &str| {
        let o = run(&CASES, &out, extra);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(why), "{why}: {}", stderr(&o));
        assert!(!out.join("report.json").exists(), "nothing ran");
    };
    let b = base.to_str().unwrap();
    refused(
        &["--baseline", b, "--platform", "b200"],
        "its platform was h100",
    );
    let mut r = report(base.parent().unwrap());
    r["case_file"]["sha256"] = "0".repeat(64).into();
    let other = dir.path().join("other.json");
    std::fs::write(&other, r.to_string()).unwrap();
    refused(
        &["--baseline", other.to_str().unwrap()],
        "another case file",
    );
    for key in ["case_file", "target", "gt_platform", "version"] {
        r.as_object_mut().unwrap().remove(key);
    }
    std::fs::write(&other, r.to_string()).unwrap();
    refused(
        &["--baseline", other.to_str().unwrap()],
        "does not say which case file",
    );
    let first = dir.path().join("first");
    let o = run(
        &CASES,
        &first,
        &["--baseline", first.join("report.json").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("this run's --out folder"),
        "{}",
        stderr(&o)
    );

    let o = run(
        &CASES,
        &out,
        &["--baseline", other.to_str().unwrap(), "--baseline-any"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let accepted = report(&out)["baseline"]["accepted"].to_string();
    assert!(
        accepted.contains("does not say which case file"),
        "{accepted}"
    );
}
