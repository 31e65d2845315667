//! Qwen-Image-Layered end to end on the tiny official Layered folder (testdata/tiny-qwen-image-layered,
//! goldens from xtask/reference/gen_e2e_layered.py running diffusers 0.42.1's
//! `QwenImageLayeredPipeline`): for each case of testdata/cases/tiny_layered.toml (read with the
//! consistency runner's parser) our RGBA layers equal diffusers' with PSNR ≥ 40 dB each, the
//! first layer with its alpha dropped equals the official GT file, and on the way the input's VAE
//! latents, the initial noise, the schedule, the caption (the empty-prompt case: the same ids and
//! text) and the latents after the first step match, so that a failure is located.

use burn::tensor::Tensor;
use cases::Case;
use image_io::LayeredResolution;
use pipeline::{InitialLatents, InputImage, QwenImageLayeredPipeline, Request};
use serde_json::Value;

use crate::common::{B, load, max_rel_err, testdata};

fn pipe() -> QwenImageLayeredPipeline<B> {
    load::<QwenImageLayeredPipeline<B>>(
        testdata().join("tiny-qwen-image-layered"),
        &Default::default(),
    )
    .unwrap()
}

/// The Layered cases, as the consistency runner reads them.
fn cases() -> Vec<Case> {
    cases::load(&testdata().join("cases/tiny_layered.toml")).unwrap()
}

/// What the oracle recorded for each case (cases.json).
fn info(id: &str) -> Value {
    let text = std::fs::read_to_string(testdata().join("e2e-layered/cases.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[id].clone()
}

fn golden(id: &str) -> weights::Weights {
    weights::Weights::open(testdata().join(format!("e2e-layered/{id}.safetensors"))).unwrap()
}

fn input() -> InputImage {
    InputImage::load(testdata().join("caption/image_rgba.png")).unwrap()
}

/// The first 8 tokens of each frame `[F, 8, C]` and each frame's f64 sum, as the oracle stores them.
fn frame_heads(packed: Tensor<B, 3>, frames: usize) -> (Vec<f32>, Vec<f64>) {
    let [_, n, c] = packed.dims();
    let v = packed.into_data().to_vec::<f32>().unwrap();
    let per = n / frames;
    let mut heads = Vec::new();
    let mut sums = Vec::new();
    for f in 0..frames {
        let frame = &v[f * per * c..(f + 1) * per * c];
        heads.extend_from_slice(&frame[..8 * c]);
        sums.push(frame.iter().map(|&x| f64::from(x)).sum());
    }
    (heads, sums)
}

fn check_heads(what: &str, id: &str, got: (Vec<f32>, Vec<f64>), head: &str, sum: &str) {
    let g = golden(id);
    let (want_head, _) = g.get_f32(head).unwrap();
    let err = max_rel_err(&got.0, &want_head);
    assert!(
        err <= 1e-4,
        "{id}: {what} (first tokens of each frame): max rel err {err:e}"
    );
    let (want_sum, _) = g.get_f32(sum).unwrap();
    for (f, (a, b)) in got.1.iter().zip(&want_sum).enumerate() {
        // A sum over ~100k values: compare against the sum of magnitudes' scale.
        let tol = 1e-4 * (b.abs() as f64).max(1.0) + 1e-3;
        assert!(
            (a - f64::from(*b)).abs() <= tol,
            "{id}: {what} frame {f} sum {a} vs {b}"
        );
    }
}

/// skimage's `peak_signal_noise_ratio(data_range=255)` over all four channels.
fn psnr_rgba(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[test]
fn the_case_file_reaches_the_request() {
    let cases = cases();
    let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["tiny_layered_prompt", "tiny_layered_caption"]);
    for c in &cases {
        let i = info(&c.id);
        let r = c.request();
        let o = r.layered_options();
        assert_eq!(o.layers as u64, i["layers"].as_u64().unwrap(), "{}", c.id);
        assert_eq!(
            o.resolution.pixels() as u64,
            i["resolution"].as_u64().unwrap()
        );
        assert_eq!(o.cfg_normalize, i["cfg_normalize"].as_bool().unwrap());
        assert_eq!(o.use_en_prompt, i["use_en_prompt"].as_bool().unwrap());
        assert_eq!(c.prompt, i["prompt"].as_str().unwrap());
        assert_eq!(c.num_inference_steps as u64, i["steps"].as_u64().unwrap());
        assert_eq!(c.seed, i["seed"].as_u64());
        assert_eq!(c.images.len(), 1, "{}: one input image", c.id);
    }
}

/// One test per case (the file holds these two, `the_case_file_reaches_the_request` checks) so
/// that both run at once.
#[test]
fn tiny_layered_prompt_matches_the_official_diffusers_layers() {
    case_matches_the_official_diffusers_layers("tiny_layered_prompt");
}

#[test]
fn tiny_layered_caption_matches_the_official_diffusers_layers() {
    case_matches_the_official_diffusers_layers("tiny_layered_caption");
}

fn case_matches_the_official_diffusers_layers(id: &str) {
    let pipe = pipe();
    let c = cases().into_iter().find(|c| c.id == id).unwrap();
    let i = info(id);
    let layers = i["layers"].as_u64().unwrap() as usize;
    let frames = layers + 1;
    let req = c
        .request_with_images(&mut |u| Err(format!("no network in tests: {u}")))
        .unwrap();
    let opts = req.layered_options();

    // The input at the bucket size and its VAE latents.
    let prepared = pipe.prepare_input(&input(), opts.resolution).unwrap();
    assert_eq!(
        (prepared.height as u64, prepared.width as u64),
        (i["height"].as_u64().unwrap(), i["width"].as_u64().unwrap()),
        "{id}: bucket size"
    );
    let tokens = prepared.image_latents.dims()[1];
    assert_eq!(tokens as u64, i["image_latent_tokens"].as_u64().unwrap());
    let (head, sum) = frame_heads(prepared.image_latents.clone(), 1);
    check_heads(
        "image latents",
        id,
        (head, sum),
        "image_latents_head",
        "image_latents_sum",
    );

    // The seeded noise, drawn as (1, layers + 1, 16, h, w) and packed per frame.
    let noise = pipe
        .prepare_latents(
            &c.initial_latents(),
            layers,
            prepared.height,
            prepared.width,
        )
        .unwrap();
    assert_eq!(noise.dims()[1], frames * tokens);
    check_heads(
        "initial latents",
        id,
        frame_heads(noise, frames),
        "initial_latents_head",
        "initial_latents_sum",
    );

    // The schedule: linspace(1, 0, n + 1)[:-1] shifted by mu = sqrt(tokens / 256).
    let schedule = pipe.schedule(c.num_inference_steps, tokens).unwrap();
    let g = golden(id);
    let (sigmas, _) = g.get_f32("sigmas").unwrap();
    let (timesteps, _) = g.get_f32("timesteps").unwrap();
    assert!(
        max_rel_err(&schedule.sigmas, &sigmas) <= 1e-6,
        "{id}: {schedule:?}"
    );
    assert!(
        max_rel_err(&schedule.timesteps, &timesteps) <= 1e-6,
        "{id}: {schedule:?}"
    );
    assert!((schedule.mu.unwrap() - i["mu"].as_f64().unwrap()).abs() < 1e-12);

    let out = pipe.generate(&req, &mut |_| {}).unwrap();

    // The prompt used: given, or the caption diffusers made (same ids, same text).
    match &out.caption {
        Some(caption) => {
            assert!(
                i["captioned"].as_bool().unwrap(),
                "{id}: captioned but diffusers did not"
            );
            let want: Vec<u32> = i["caption_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(caption.ids, want, "{id}: caption ids");
            assert_eq!(
                caption.text,
                i["prompt_used"].as_str().unwrap(),
                "{id}: caption"
            );
            assert_eq!(
                caption.prompt_tokens as u64,
                i["caption_prompt_len"].as_u64().unwrap()
            );
        }
        None => assert!(
            !i["captioned"].as_bool().unwrap(),
            "{id}: diffusers captioned"
        ),
    }

    let step1 = out.latents_after_first_step.clone().unwrap();
    check_heads(
        "latents after the first step",
        id,
        frame_heads(step1, frames),
        "latents_step1_head",
        "latents_step1_sum",
    );

    assert_eq!(out.layers.len(), layers, "{id}: layer count");
    for (k, layer) in out.layers.iter().enumerate() {
        let path = testdata().join(format!("e2e-layered/{id}/layer_{k}.png"));
        let want = image::open(&path).unwrap().to_rgba8();
        let psnr = psnr_rgba(layer, &want);
        eprintln!("{id} layer {k}: psnr {psnr:.2} dB (RGBA)");
        assert!(psnr >= 40.0, "{id} layer {k}: PSNR {psnr} < 40 dB");
    }

    // What upstream compares: the first layer, alpha dropped (not composited).
    assert_eq!(out.image, pipeline::drop_alpha(&out.layers[0]));
    let gt = metrics::load_rgb(&testdata().join(format!("gt/official_generated/{id}_1gpu.png")))
        .unwrap();
    let psnr = metrics::psnr(&out.image, &gt).unwrap();
    assert!(
        psnr >= 40.0,
        "{id}: PSNR {psnr} against the official GT < 40 dB"
    );
}

#[test]
fn the_bucket_follows_the_aspect_ratio() {
    // diffusers: calculate_dimensions(res², w / h), sides rounded to multiples of 32.
    let cases = [
        ((97, 61), LayeredResolution::R640, (512, 800)),
        ((1, 1), LayeredResolution::R640, (640, 640)),
        ((1, 1), LayeredResolution::R1024, (1024, 1024)),
        ((61, 97), LayeredResolution::R1024, (1280, 800)),
        ((1920, 1080), LayeredResolution::R640, (480, 864)),
    ];
    for (input, res, want) in cases {
        assert_eq!(
            QwenImageLayeredPipeline::<B>::output_size(input, res),
            want,
            "{input:?} {res:?}"
        );
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let pipe = pipe();
    let msg = |r: &Request| pipe.generate(r, &mut |_| {}).unwrap_err().to_string();

    let two = Request::edit("x", vec![input(), input()]).steps(1);
    assert!(
        msg(&two).contains("exactly one input image"),
        "{}",
        msg(&two)
    );
    let zero = Request::layered("x", input()).layers(0);
    assert!(
        msg(&zero).contains("layers must be between"),
        "{}",
        msg(&zero)
    );
    let no_steps = Request::layered("x", input()).steps(0);
    assert!(msg(&no_steps).contains("at least 1"), "{}", msg(&no_steps));

    // Latents of the wrong shape name the file and the packed shape this size needs.
    let text_to_image_latents = testdata().join("e2e/latents/tiny_t2i_cfg.safetensors");
    let req = Request::layered("x", input())
        .layers(1)
        .steps(1)
        .latents(InitialLatents::File(text_to_image_latents.clone()));
    let m = msg(&req);
    assert!(
        m.contains("tiny_t2i_cfg.safetensors") && m.contains("[1, 3200, 64]"),
        "{m}"
    );

    // A folder of another class is refused by name.
    let m = load::<QwenImageLayeredPipeline<B>>(
        testdata().join("tiny-qwen-image"),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(m.contains("QwenImagePipeline"), "{m}");
}
