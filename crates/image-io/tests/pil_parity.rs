//! Given the files and pixels Pillow 13 / diffusers 0.42.1 produced (testdata/image-io, written by
//! xtask/reference/gen_image_io.py), our reading, converting, resizing, preprocessing and JPEG
//! coding give the same bytes.

use std::path::PathBuf;

use image_io::{
    Image, JpegOptions, LayeredResolution, Mode, Resample, Subsampling, VaeImageProcessor,
    calculate_dimensions, decode_jpeg, encode_jpeg, load, qwen_edit_image, qwen_edit_output_size,
    qwen_edit_plus_image, qwen_layered_image,
};
use parity_support::Goldens;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/image-io")
}

fn json(rel: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(rel)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn golden(rel: &str) -> Image {
    load(dir().join(rel)).unwrap_or_else(|e| panic!("{e}"))
}

/// Number of differing bytes and the mean absolute difference, after checking mode and size.
fn diff(ours: &Image, want: &Image, what: &str) -> (usize, f64) {
    assert_eq!(ours.mode(), want.mode(), "{what}: mode");
    assert_eq!(ours.size(), want.size(), "{what}: size");
    let (a, b) = (ours.as_bytes(), want.as_bytes());
    let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    (differing, sum as f64 / a.len().max(1) as f64)
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn mode_of(name: &str) -> Mode {
    match name {
        "L" => Mode::L,
        "LA" => Mode::La,
        "RGB" => Mode::Rgb,
        "RGBA" => Mode::Rgba,
        "I;16" => Mode::I16,
        other => panic!("mode {other}"),
    }
}

#[test]
fn sources_open_in_pils_mode_with_pils_pixels() {
    let meta = json("sources.json");
    let bytes = std::fs::read(dir().join("opened.safetensors")).unwrap();
    let opened = SafeTensors::deserialize(&bytes).unwrap();
    let mut checked = 0;
    for (name, pil_mode) in meta["modes"].as_object().unwrap() {
        let file = match name.as_str() {
            "rgba_lossless_webp" => "sources/rgba_lossless.webp".to_string(),
            "rgb_lossy_webp" => "sources/rgb_lossy.webp".to_string(),
            n => format!("sources/{n}.png"),
        };
        let img = golden(&file);
        let pil_mode = pil_mode.as_str().unwrap();
        if pil_mode == "P" {
            // Documented: palettes come expanded (RGBA here, the file has a tRNS chunk).
            assert_eq!(img.mode(), Mode::Rgba, "{name}");
            continue;
        }
        assert_eq!(img.mode(), mode_of(pil_mode), "{name}: mode");
        if name == "rgb_lossy_webp" {
            continue; // pixels: see webp_decode_equals_pil
        }
        let want = opened.tensor(name).unwrap();
        let ours: Vec<u8> = match want.dtype() {
            Dtype::U16 => img
                .as_u16()
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            _ => img.as_bytes().to_vec(),
        };
        assert_eq!(ours, want.data(), "{name}: pixels differ from PIL's");
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn resize_equals_pillow_for_every_filter_mode_and_size() {
    let filters = [
        (Resample::Nearest, "nearest"),
        (Resample::Box, "box"),
        (Resample::Bilinear, "bilinear"),
        (Resample::Hamming, "hamming"),
        (Resample::Bicubic, "bicubic"),
        (Resample::Lanczos, "lanczos"),
    ];
    let sizes = [(67, 53), (19, 13), (52, 17), (41, 60), (23, 29)];
    let mut failures = Vec::new();
    let mut checked = 0;
    for mode in ["l", "la", "rgb", "rgba"] {
        let src = golden(&format!("sources/{mode}.png"));
        for (filter, fname) in filters {
            for (w, h) in sizes {
                let what = format!("{mode}_{fname}_{w}x{h}");
                let want = golden(&format!("resize/{what}.png"));
                let ours = src.resize(w, h, filter).unwrap();
                let (n, mad) = diff(&ours, &want, &what);
                if n != 0 {
                    failures.push(format!("{what}: {n} bytes differ (mean abs {mad:.4})"));
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 120);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn convert_equals_pillow() {
    let mut failures = Vec::new();
    for src in ["l", "la", "rgb", "rgba", "i16", "rgb16", "la16", "p"] {
        let img = golden(&format!("sources/{src}.png"));
        for (mode, name) in [
            (Mode::L, "l"),
            (Mode::La, "la"),
            (Mode::Rgb, "rgb"),
            (Mode::Rgba, "rgba"),
        ] {
            let what = format!("{src}_{name}");
            let want = golden(&format!("convert/{what}.png"));
            let (n, _) = diff(&img.convert(mode).unwrap(), &want, &what);
            if n != 0 {
                failures.push(format!("{what}: {n} bytes differ"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn preprocess_equals_diffusers() {
    let st = Goldens::open(dir().join("vae/preprocess.safetensors"));
    let qwen = VaeImageProcessor::qwen_image();
    let to_rgb = VaeImageProcessor {
        do_convert_rgb: true,
        ..qwen
    };
    let bicubic = VaeImageProcessor {
        vae_scale_factor: 8,
        resample: Resample::from_diffusers_name("bicubic").unwrap(),
        ..VaeImageProcessor::default()
    };
    let (rgb, rgba, grey) = (
        golden("sources/rgb.png"),
        golden("sources/rgba.png"),
        golden("sources/l.png"),
    );
    // (golden name, processor, image, height, width)
    type Case<'a> = (
        &'a str,
        VaeImageProcessor,
        &'a Image,
        Option<u32>,
        Option<u32>,
    );
    let cases: [Case; 7] = [
        ("qwen_rgb_h32_w48", qwen, &rgb, Some(32), Some(48)),
        ("qwen_rgba_h32_w48", qwen, &rgba, Some(32), Some(48)),
        ("qwen_l_h16_w64", qwen, &grey, Some(16), Some(64)),
        ("qwen_rgb_default", qwen, &rgb, None, None),
        ("qwen_rgb_h37_w50", qwen, &rgb, Some(37), Some(50)),
        (
            "convert_rgb_rgba_h32_w32",
            to_rgb,
            &rgba,
            Some(32),
            Some(32),
        ),
        ("bicubic8_rgb_h24_w40", bicubic, &rgb, Some(24), Some(40)),
    ];
    for (name, proc, img, h, w) in cases {
        let (want, shape) = st.f32(name);
        let ours = proc.preprocess(img, h, w).unwrap();
        assert_eq!(&ours.shape[..], &shape[..], "{name}: shape");
        let max = ours
            .data
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert_eq!(max, 0.0, "{name}: max abs difference from diffusers");
    }
}

#[test]
fn calculate_dimensions_equals_the_pipelines() {
    let meta = json("vae/pipelines.json");
    let rows = meta["calculate_dimensions"].as_array().unwrap();
    assert!(rows.len() > 700);
    for row in rows {
        let v: Vec<u32> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let ratio = f64::from(v[0]) / f64::from(v[1]);
        assert_eq!(
            calculate_dimensions(v[2], ratio),
            (v[3], v[4]),
            "{}x{} at area {}",
            v[0],
            v[1],
            v[2]
        );
    }
    let c = &meta["constants"];
    assert_eq!(c["VAE_IMAGE_SIZE"], image_io::EDIT_VAE_AREA);
    assert_eq!(
        c["CONDITION_IMAGE_SIZE"],
        image_io::EDIT_PLUS_CONDITION_AREA
    );
}

fn pair(v: &Value) -> (u32, u32) {
    (v[0].as_u64().unwrap() as u32, v[1].as_u64().unwrap() as u32)
}

fn f32_sha(data: &[f32]) -> String {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    sha_hex(&bytes)
}

fn check_case(name: &str, want: &Value, got: &image_io::PipelineImage) {
    assert_eq!(
        sha_hex(got.condition.as_bytes()),
        want["condition_sha256"],
        "{name}: condition image bytes"
    );
    let shape: Vec<u64> = got.vae.shape.iter().map(|&s| s as u64).collect();
    assert_eq!(
        Value::from(shape),
        want["vae_shape"],
        "{name}: VAE input shape"
    );
    assert_eq!(
        f32_sha(&got.vae.data),
        want["vae_sha256"],
        "{name}: VAE input values"
    );
}

#[test]
fn qwen_pipeline_steps_equal_diffusers_at_real_sizes() {
    let meta = json("vae/pipelines.json");
    let cases = &meta["cases"];
    for src in ["rgb", "rgb16"] {
        let want = &cases[format!("edit_{src}")];
        let img = golden(&format!("sources/{src}.png"))
            .convert(Mode::Rgb)
            .unwrap();
        let got = qwen_edit_image(&img).unwrap();
        assert_eq!(got.vae_size, pair(&want["calculated"]), "edit_{src}");
        assert_eq!(qwen_edit_output_size(img.size()), pair(&want["output"]));
        check_case(&format!("edit_{src}"), want, &got);
    }
    let want = &cases["edit_plus_rgb"];
    let got = qwen_edit_plus_image(&golden("sources/rgb.png")).unwrap();
    assert_eq!(got.condition.size(), pair(&want["condition_size"]));
    assert_eq!(got.vae_size, pair(&want["vae_size"]));
    check_case("edit_plus_rgb", want, &got);
    let rgba = golden("sources/rgba.png");
    for (res, key) in [
        (LayeredResolution::R640, "layered_640_rgba"),
        (LayeredResolution::R1024, "layered_1024_rgba"),
    ] {
        let got = qwen_layered_image(&rgba, res).unwrap();
        assert_eq!(got.vae_size, pair(&cases[key]["calculated"]), "{key}");
        check_case(key, &cases[key], &got);
    }
}

#[test]
fn jpeg_decode_equals_pil() {
    let meta = json("jpeg/variants.json");
    let mut report = Vec::new();
    for (name, v) in meta.as_object().unwrap() {
        let bytes = std::fs::read(dir().join(format!("jpeg/pil_{name}.jpg"))).unwrap();
        let ours = decode_jpeg(&bytes).unwrap();
        let want = golden(&format!("jpeg/pil_{name}.png"));
        assert_eq!(ours.mode(), mode_of(v["mode"].as_str().unwrap()), "{name}");
        let (n, mad) = diff(&ours, &want, name);
        if n != 0 {
            report.push(format!("{name}: {n} bytes differ, mean abs diff {mad:.5}"));
        }
    }
    assert_eq!(meta.as_object().unwrap().len(), 12);
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn jpeg_encode_is_byte_identical_to_pil() {
    let cases = [
        ("photo", "photo_q75", JpegOptions::default()),
        ("photo", "photo_q95", JpegOptions::quality(95)),
        (
            "photo",
            "photo_q75_444",
            JpegOptions {
                quality: 75,
                subsampling: Subsampling::S444,
            },
        ),
        (
            "photo",
            "photo_q95_444",
            JpegOptions {
                quality: 95,
                subsampling: Subsampling::S444,
            },
        ),
        (
            "photo",
            "photo_q75_422",
            JpegOptions {
                quality: 75,
                subsampling: Subsampling::S422,
            },
        ),
        ("odd", "odd_q75", JpegOptions::quality(75)),
        (
            "odd",
            "odd_q95_444",
            JpegOptions {
                quality: 95,
                subsampling: Subsampling::S444,
            },
        ),
        ("grey", "grey_q75", JpegOptions::default()),
        ("noise", "noise_q75", JpegOptions::default()),
        ("noise", "noise_q95", JpegOptions::quality(95)),
    ];
    for (src, name, opts) in cases {
        let img = golden(&format!("jpeg/{src}.png"));
        let ours = encode_jpeg(&img, opts).unwrap();
        let pil = std::fs::read(dir().join(format!("jpeg/pil_{name}.jpg"))).unwrap();
        // The decoded pixels first (what a comparison sees), then the bytes themselves.
        let (n, mad) = diff(
            &decode_jpeg(&ours).unwrap(),
            &golden(&format!("jpeg/pil_{name}.png")),
            name,
        );
        assert_eq!(
            n, 0,
            "{name}: our encode decodes to other pixels (mean abs {mad})"
        );
        assert!(
            ours == pil,
            "{name}: {} bytes vs PIL's {}",
            ours.len(),
            pil.len()
        );
    }
}

#[test]
fn jpeg_refuses_modes_pil_refuses() {
    let rgba = golden("sources/rgba.png");
    assert!(encode_jpeg(&rgba, JpegOptions::default()).is_err());
    let err = decode_jpeg(b"\xff\xd8\xff\xe0 not a jpeg").unwrap_err();
    assert!(err.to_string().contains("<memory>"), "{err}");
}

#[test]
fn webp_decode_equals_pil() {
    let lossless = golden("sources/rgba_lossless.webp");
    let (n, _) = diff(
        &lossless,
        &golden("webp/rgba_lossless_webp.png"),
        "lossless",
    );
    assert_eq!(n, 0, "lossless WebP");
    let lossy = golden("sources/rgb_lossy.webp");
    let (n, mad) = diff(&lossy, &golden("webp/rgb_lossy_webp.png"), "lossy");
    assert_eq!(n, 0, "lossy WebP: mean abs diff {mad}");
}

#[test]
fn load_errors_name_the_file() {
    let err = load(dir().join("no-such-file.png")).unwrap_err();
    assert!(err.to_string().contains("no-such-file.png"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\ngarbage").unwrap();
    let err = load(&bad).unwrap_err();
    assert!(err.to_string().contains("broken.png"), "{err}");
}
