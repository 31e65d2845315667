//! Threshold files in upstream's format: lookup order, platform overlays, the pass rule, errors.

use std::path::{Path, PathBuf};

use metrics::{
    CaseThresholds, Error, FrameMetrics, ImageMetrics, Media, Metric, Status, Thresholds,
};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/metrics/thresholds")
        .join(name)
}

fn frame(name: &str, clip: Option<f64>, ssim: f64, psnr: f64, mad: f64) -> FrameMetrics {
    FrameMetrics {
        frame: name.into(),
        metrics: ImageMetrics {
            clip,
            ssim,
            psnr,
            mean_abs_diff: mad,
        },
    }
}

#[test]
fn a_case_entry_wins_then_file_defaults_then_builtin_defaults() {
    let t = Thresholds::load(&sample("h100.json"), None).unwrap();
    let t2i = CaseThresholds {
        clip: 0.97,
        ssim: 0.83,
        psnr: 16.0,
        mean_abs_diff: 13.3,
    };
    assert_eq!(t.for_case("qwen_image_t2i", Media::Image), t2i);
    // Unknown case: the file's image defaults.
    let defaults = CaseThresholds {
        clip: 0.93,
        ssim: 0.96,
        psnr: 29.0,
        mean_abs_diff: 7.0,
    };
    assert_eq!(t.for_case("unknown_case", Media::Image), defaults);
    // Video: the file lacks default_mean_abs_diff_threshold_video, so the built-in 10.0 applies.
    let video = CaseThresholds {
        clip: 0.91,
        ssim: 0.93,
        psnr: 25.0,
        mean_abs_diff: 10.0,
    };
    assert_eq!(t.for_case("unknown_case", Media::Video), video);
    // A case entry missing keys falls back per metric (here: only ssim is given).
    let partial = CaseThresholds {
        ssim: 0.5,
        ..defaults
    };
    assert_eq!(t.for_case("partial_case", Media::Image), partial);
}

#[test]
fn without_a_file_the_builtin_defaults_apply() {
    let t = Thresholds::builtin();
    assert_eq!(
        t.for_case("qwen_image_t2i", Media::Image),
        CaseThresholds {
            clip: 0.92,
            ssim: 0.95,
            psnr: 28.0,
            mean_abs_diff: 8.0
        }
    );
    assert_eq!(
        t.for_case("qwen_image_t2i", Media::Video),
        CaseThresholds {
            clip: 0.90,
            ssim: 0.92,
            psnr: 24.0,
            mean_abs_diff: 10.0
        }
    );
}

#[test]
fn an_overlay_replaces_whole_case_entries_and_single_top_level_keys() {
    let t = Thresholds::load(&sample("h100.json"), Some(&sample("b200.json"))).unwrap();
    // The overlay's qwen_image_t2i entry has only clip and ssim: psnr and mad do NOT come from the
    // base entry (16.0 / 13.3) but from the defaults; psnr's default is itself overlaid (27.5).
    assert_eq!(
        t.for_case("qwen_image_t2i", Media::Image),
        CaseThresholds {
            clip: 0.95,
            ssim: 0.8,
            psnr: 27.5,
            mean_abs_diff: 7.0
        }
    );
    // Cases the overlay does not mention keep the base entry.
    assert_eq!(
        t.for_case("qwen_image_edit_2509_ti2i", Media::Image).psnr,
        11.3
    );
    // Other base defaults survive.
    assert_eq!(t.for_case("unknown", Media::Image).ssim, 0.96);
}

#[test]
fn every_failing_frame_and_metric_is_collected() {
    let t = CaseThresholds {
        clip: 0.97,
        ssim: 0.83,
        psnr: 16.0,
        mean_abs_diff: 13.3,
    };
    let frames = [
        frame("frame_0", Some(0.99), 0.90, 20.0, 5.0),
        frame("frame_mid", Some(0.96), 0.80, 15.0, 14.0),
        frame("frame_last", Some(0.97), 0.83, 16.0, 13.3), // exactly at every threshold: passes
    ];
    let v = t.check(&frames);
    assert_eq!(v.status(), Status::Failed);
    let got: Vec<(&str, Metric)> = v
        .failures
        .iter()
        .map(|f| (f.frame.as_str(), f.metric))
        .collect();
    assert_eq!(
        got,
        [
            ("frame_mid", Metric::Clip),
            ("frame_mid", Metric::Ssim),
            ("frame_mid", Metric::Psnr),
            ("frame_mid", Metric::MeanAbsDiff),
        ]
    );
    assert_eq!(
        v.failures[1].to_string(),
        "frame_mid: ssim 0.8000 < threshold 0.83 (needs >= 0.83)"
    );
    assert_eq!(
        v.failures[3].to_string(),
        "frame_mid: mean_abs_diff 14.0000 > threshold 13.3 (needs <= 13.3)"
    );
}

#[test]
fn infinite_psnr_passes_and_nan_fails() {
    let t = CaseThresholds::IMAGE;
    assert!(
        t.check(&[frame("image", Some(1.0), 1.0, f64::INFINITY, 0.0)])
            .passed()
    );
    let v = t.check(&[frame("image", Some(1.0), f64::NAN, 40.0, 0.0)]);
    assert_eq!(v.failures.len(), 1);
    assert_eq!(v.failures[0].metric, Metric::Ssim);
}

#[test]
fn a_missing_clip_score_is_never_a_pass() {
    let t = CaseThresholds::IMAGE;
    let v = t.check(&[frame("image", None, 1.0, f64::INFINITY, 0.0)]);
    assert!(v.failures.is_empty());
    assert_eq!(v.status(), Status::Incomplete);
    assert!(!v.passed());
    assert_eq!(
        v.unchecked[0].to_string(),
        "image: clip not computed, not checked"
    );
    // Failures still win over missing scores.
    let v = t.check(&[frame("image", None, 0.1, f64::INFINITY, 0.0)]);
    assert_eq!(v.status(), Status::Failed);
}

#[test]
fn no_frames_is_not_a_pass() {
    let v = CaseThresholds::IMAGE.check(&[]);
    assert_eq!(v.status(), Status::Incomplete);
}

#[test]
fn bad_json_is_an_error_naming_the_file_and_position() {
    let err = Thresholds::parse("{\"cases\": {", Path::new("ci/h100.json")).unwrap_err();
    assert!(matches!(err, Error::Json { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("ci/h100.json") && msg.contains("line 1"),
        "{msg}"
    );
}

#[test]
fn wrong_types_name_the_key() {
    let text = r#"{"cases": {"qwen_image_t2i": {"ssim_threshold": "high"}}}"#;
    let msg = Thresholds::parse(text, Path::new("t.json"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cases.qwen_image_t2i.ssim_threshold") && msg.contains("\"high\""),
        "{msg}"
    );

    let msg = Thresholds::parse(
        r#"{"default_psnr_threshold_video": null}"#,
        Path::new("t.json"),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("default_psnr_threshold_video"), "{msg}");

    let msg = Thresholds::parse(r#"{"cases": []}"#, Path::new("t.json"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`cases`"), "{msg}");
    let msg = Thresholds::parse("[1, 2]", Path::new("t.json"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("JSON object"), "{msg}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let err = Thresholds::load(
        &sample("h100.json"),
        Some(Path::new("/nonexistent/b200.json")),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/b200.json"));
}

#[test]
fn unknown_keys_and_empty_files_are_accepted() {
    let t = Thresholds::parse("{}", Path::new("empty.json")).unwrap();
    assert_eq!(t, Thresholds::builtin());
    assert!(!t.has_case("qwen_image_t2i"));
}

#[test]
fn thresholds_outside_their_metric_range_are_refused_naming_the_key() {
    for (text, key, says) in [
        (
            r#"{"cases": {"a": {"ssim_threshold": 1.5}}}"#,
            "cases.a.ssim_threshold",
            "no value can meet it",
        ),
        (
            r#"{"default_psnr_threshold_image": -3}"#,
            "default_psnr_threshold_image",
            "every value passes it",
        ),
        (
            r#"{"cases": {"a": {"mean_abs_diff_threshold": -1}}}"#,
            "cases.a.mean_abs_diff_threshold",
            "no value can meet it",
        ),
        (
            r#"{"default_mean_abs_diff_threshold_video": 300}"#,
            "default_mean_abs_diff_threshold_video",
            "every value passes it",
        ),
        (
            r#"{"default_clip_threshold_image": -2}"#,
            "default_clip_threshold_image",
            "every value passes it",
        ),
    ] {
        let err = Thresholds::parse(text, Path::new("t.json")).unwrap_err();
        assert!(matches!(err, Error::BadValue { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("t.json") && msg.contains(key) && msg.contains(says),
            "{msg}"
        );
    }
    // The ends of each range are allowed.
    let t = Thresholds::parse(
        r#"{"cases": {"a": {"clip_threshold": -1, "ssim_threshold": 1, "psnr_threshold": 0,
            "mean_abs_diff_threshold": 255}}}"#,
        Path::new("t.json"),
    )
    .unwrap();
    assert_eq!(t.for_case("a", Media::Image).mean_abs_diff, 255.0);
}

#[test]
fn unknown_keys_are_warnings_with_the_closest_known_key() {
    let text = r#"{"_comment": "x", "default_ssim_treshold_image": 0.5,
        "cases": {"a": {"psnr_treshold": 30, "audio_rms_db_diff_threshold": 1, "_note": 1}},
        "default_audio_duration_diff_threshold": 0.1, "colour": 3}"#;
    let t = Thresholds::parse(text, Path::new("t.json")).unwrap();
    let w = t.warnings().join("\n");
    assert_eq!(t.warnings().len(), 3, "{w}");
    assert!(
        w.contains("t.json: unknown key `default_ssim_treshold_image`")
            && w.contains("did you mean `default_ssim_threshold_image`"),
        "{w}"
    );
    assert!(
        w.contains("`cases.a.psnr_treshold`")
            && w.contains("did you mean `cases.a.psnr_threshold`"),
        "{w}"
    );
    assert!(w.contains("`colour` is ignored"), "{w}");
    // The misspelt keys were not applied: the defaults stand.
    assert_eq!(
        t.for_case("a", Media::Image).psnr,
        CaseThresholds::IMAGE.psnr
    );
    // The sample files, upstream's keys only, warn about nothing; an overlay's warnings are kept.
    let base = Thresholds::load(&sample("h100.json"), Some(&sample("b200.json"))).unwrap();
    assert!(base.warnings().is_empty(), "{:?}", base.warnings());
    let merged = base.overlaid_with(t);
    assert_eq!(merged.warnings().len(), 3);
}
