//! Candidate names and platform aliases, as insta snapshots (upstream's unit-test examples inside).

use gt_resolver::{GtQuery, Platform, image_extensions};

fn render(q: &GtQuery) -> String {
    q.candidate_sets()
        .iter()
        .map(|set| {
            let head = match set.platform {
                Some(p) => format!("[{p}/] all_required={}", set.all_required),
                None => format!("[bare] all_required={}", set.all_required),
            };
            format!("{head}\n  {}", set.names.join("\n  "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn image_png_on_h100() {
    // Upstream unit test: h100 + png → h100/… png, jpg, webp, then bare png, jpg, webp.
    insta::assert_snapshot!(render(&GtQuery::image(
        "unit_image",
        1,
        Some("png"),
        Platform::H100
    )));
}

#[test]
fn image_without_format_prefers_jpg() {
    insta::assert_snapshot!(render(&GtQuery::image(
        "qwen_image_t2i",
        1,
        None,
        Platform::B200
    )));
}

#[test]
fn image_two_gpus_webp_on_5090() {
    insta::assert_snapshot!(render(&GtQuery::image(
        "qwen_image_t2i_2_gpus",
        2,
        Some("webp"),
        Platform::Rtx5090
    )));
}

#[test]
fn video_frames_are_png_and_all_required() {
    insta::assert_snapshot!(render(&GtQuery::video("wan2_1_t2v", 1, Platform::H100)));
}

#[test]
fn output_format_to_extension_order() {
    let table: Vec<String> = [
        None,
        Some(""),
        Some("jpeg"),
        Some("JPG"),
        Some("png"),
        Some("webp"),
        Some("gif"),
    ]
    .iter()
    .map(|f| format!("{f:?} -> {}", image_extensions(*f).join(", ")))
    .collect();
    insta::assert_snapshot!(table.join("\n"));
}

#[test]
fn platform_aliases() {
    let inputs = [
        "h100",
        "H100",
        "sm90",
        "SM_90",
        "hopper",
        "b200",
        "sm100",
        "Blackwell",
        "5090",
        "sm120",
        "rtx5090",
        "RTX-5090",
        " sm-120 ",
    ];
    let table: Vec<String> = inputs
        .iter()
        .map(|v| {
            format!(
                "{v:?} -> {}",
                Platform::parse(v).map_or_else(|e| e.to_string(), |p| p.to_string())
            )
        })
        .collect();
    insta::assert_snapshot!(table.join("\n"));
}

#[test]
fn unknown_platform_is_an_error_naming_the_value() {
    let err = Platform::parse("a100").expect_err("unknown");
    assert!(err.to_string().contains("\"a100\""), "{err}");
}
