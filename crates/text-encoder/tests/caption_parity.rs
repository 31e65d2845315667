//! The Layered auto-caption against diffusers' `QwenImageLayeredPipeline` (an empty prompt →
//! `get_image_caption` → transformers' `generate`) on the tiny tied and untied text encoders of
//! testdata/caption (xtask/reference/gen_caption.py): the processor's ids and pixels, the prompt's
//! M-RoPE positions, the raw logits of the first steps and the last within 1e-4, the decode-step
//! positions, and then the generated ids exactly and the caption text exactly.

use crate::common;

use std::collections::BTreeMap;

use common::{B, Goldens, max_rel_err, testdata};
use image::{DynamicImage, RgbImage};
use image_io::{LayeredResolution, Mode, qwen_layered_image};
use serde_json::Value;
use text_encoder::caption::{CaptionInputs, Generated};
use text_encoder::{
    CAPTION_PROMPT_EN, CAPTION_PROMPT_ZH, CaptionLanguage, Captioner, KvCache, LmHead,
    LmHeadSource, QwenTextEncoder, StopReason, tie_word_embeddings,
};
use tokenizer_loader::QwenTokenizer;

const TOLERANCE: f32 = 1e-4;

fn goldens() -> Goldens {
    Goldens::testdata("caption/caption.safetensors")
}

/// The pipeline's prompt image: the RGBA input as `Image.open(..).convert("RGBA")` gives it,
/// the 640 bucket's Lanczos resize (image-io's `qwen_layered_image`), then the processor's
/// `convert_to_rgb` (alpha composited onto white).
fn prompt_image() -> RgbImage {
    let img = image_io::load(testdata("caption/image_rgba.png")).expect("the input loads");
    let img = img.convert(Mode::Rgba).expect("RGBA");
    let resized = qwen_layered_image(&img, LayeredResolution::R640).expect("bucket resize");
    let rgba = resized
        .condition
        .to_rgba_image()
        .expect("an RGBA prompt image");
    image_io::convert_to_rgb(&DynamicImage::ImageRgba8(rgba))
}

fn captioner(info: &Value) -> Captioner<B> {
    let folder = info["folder"].as_str().expect("folder");
    let c = Captioner::<B>::from_pipeline_dir(testdata(folder), &Default::default())
        .unwrap_or_else(|e| panic!("{folder} loads: {e}"));
    // The generator's `generate` overrides (diffusers passes none; the greedy case does).
    let mut g = c.generation().clone();
    let o = &info["generate_overrides"];
    if let Some(s) = o["do_sample"].as_bool() {
        g.do_sample = s;
    }
    if let Some(p) = o["repetition_penalty"].as_f64() {
        g.repetition_penalty = p;
    }
    c.with_generation(g)
}

fn ids_u32(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).expect("ids")
}

fn check_inputs(g: &Goldens, name: &str, inputs: &CaptionInputs) {
    let (ids, shape) = g.i64(&format!("{name}.input_ids"));
    assert_eq!(shape, vec![1, inputs.len()], "{name}: prompt length");
    let ours: Vec<i64> = inputs.input_ids.iter().map(|&i| i64::from(i)).collect();
    assert_eq!(ours, ids, "{name}: input_ids");
    let (grid, _) = g.i64(&format!("{name}.image_grid_thw"));
    let ours: Vec<i64> = inputs.vision.grid_thw[0]
        .iter()
        .map(|&v| v as i64)
        .collect();
    assert_eq!(ours, grid, "{name}: image_grid_thw");
    let (pos, _) = g.i64(&format!("{name}.position_ids"));
    assert_eq!(inputs.position_ids, pos, "{name}: prompt M-RoPE positions");

    // Row and column sums of pixel_values (f64): equal up to summation order.
    let v = &inputs.vision;
    let (n, k) = (v.num_patches(), v.patch_dim);
    let mut rows = vec![0f64; n];
    let mut cols = vec![0f64; k];
    for (i, row) in v.pixel_values.chunks_exact(k).enumerate() {
        for (j, &x) in row.iter().enumerate() {
            rows[i] += f64::from(x);
            cols[j] += f64::from(x);
        }
    }
    for (what, ours) in [("row_sums", rows), ("col_sums", cols)] {
        let name = format!("{name}.pixel_values.{what}");
        let (want, _) = goldens().f64(&name);
        assert_eq!(ours.len(), want.len(), "{name}");
        let worst = ours
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0f64, f64::max);
        assert!(worst < 1e-9, "{name}: relative difference {worst:e}");
    }
}

fn check_case(name: &str) {
    let g = goldens();
    let info = g.info()["cases"][name].clone();
    let c = captioner(&info);
    let lang = CaptionLanguage::from_use_en_prompt(info["use_en_prompt"].as_bool().expect("lang"));
    let image = prompt_image();
    let size = [image.width(), image.height()];
    assert_eq!(
        serde_json::json!(size),
        info["prompt_image_size"],
        "{name}: prompt image size"
    );
    let inputs = c.prepare(&image, lang).expect("processor");
    check_inputs(&g, name, &inputs);

    let steps: Vec<usize> = serde_json::from_value(info["logits_steps"].clone()).expect("steps");
    let mut logits: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
    let max_new = info["max_new_tokens"].as_u64().expect("max_new_tokens") as usize;
    let out: Generated = c
        .generate(&inputs, max_new, |s| {
            if steps.contains(&s.index) {
                logits.insert(s.index, s.logits.to_vec());
            }
        })
        .expect("generate");

    // Intermediates first, so that a failure points at the step that went wrong.
    for &k in &steps {
        let (ids, _) = g.i64(&format!("{name}.logits.{k}.ids"));
        let (want, _) = g.f32(&format!("{name}.logits.{k}.values"));
        let ours = logits
            .get(&k)
            .unwrap_or_else(|| panic!("{name}: no step {k}"));
        let ours: Vec<f32> = ids.iter().map(|&i| ours[i as usize]).collect();
        let err = max_rel_err(&ours, &want);
        eprintln!("{name}: step {k} top-32 logits max rel err {err:.2e}");
        assert!(err <= TOLERANCE, "{name}: step {k} logits rel err {err:e}");
    }
    let (pos, shape) = g.i64(&format!("{name}.decode_positions"));
    let cols = shape[1];
    let ours: Vec<i64> = (0..3)
        .flat_map(|axis| out.decode_positions.iter().map(move |p| p[axis]))
        .collect();
    assert_eq!(out.decode_positions.len(), cols, "{name}: decode steps");
    assert_eq!(ours, pos, "{name}: decode-step positions");

    let want_ids = ids_u32(&info["generated_ids"]);
    assert_eq!(out.ids, want_ids, "{name}: generated ids");
    let (golden, _) = g.i64(&format!("{name}.generated_ids"));
    assert_eq!(
        out.ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(),
        golden
    );
    match info["stop"].as_str() {
        Some("eos") => assert_eq!(out.stop, StopReason::Eos(*want_ids.last().expect("ids"))),
        Some("max_new_tokens") => assert_eq!(out.stop, StopReason::MaxNewTokens),
        other => panic!("{name}: stop {other:?}"),
    }
    let text = c.decode(&out.ids).expect("decode");
    assert_eq!(
        text,
        info["caption"].as_str().expect("caption"),
        "{name}: caption"
    );
    eprintln!(
        "{name}: {} prompt tokens, {} new ({:?}), caption {text:?}",
        inputs.len(),
        out.ids.len(),
        out.stop
    );

    // The one-call API gives the same.
    let cap = c.caption(&image, lang, max_new).expect("caption");
    assert_eq!((cap.ids, cap.text), (out.ids, text));
}

#[test]
fn untied_english_ends_on_im_end() {
    check_case("untied_en");
}

#[test]
fn untied_chinese_ends_on_endoftext() {
    check_case("untied_zh");
}

#[test]
fn tied_chinese_stops_at_max_new_tokens() {
    check_case("tied_zh_cap");
}

#[test]
fn tied_english_plain_greedy() {
    check_case("tied_en_greedy");
}

#[test]
fn the_penalty_of_the_released_config_changes_the_tied_english_ids() {
    // transformers with the released generation config (do_sample, top_k 1, penalty 1.05): the
    // generator's `penalised_ids`.
    let g = goldens();
    let info = g.info()["cases"]["tied_en_greedy"].clone();
    let c = Captioner::<B>::from_pipeline_dir(
        testdata("caption/tiny-layered-tied"),
        &Default::default(),
    )
    .expect("loads");
    assert!(c.generation().do_sample && c.generation().top_k == 1);
    assert_eq!(c.generation().eos_token_ids, vec![151645, 151643]);
    let max_new = info["max_new_tokens"].as_u64().expect("n") as usize;
    let cap = c
        .caption(&prompt_image(), CaptionLanguage::English, max_new)
        .expect("caption");
    let want = ids_u32(&info["penalised_ids"]);
    assert_eq!(cap.ids, want);
    assert_ne!(want, ids_u32(&info["generated_ids"]));
}

#[test]
fn prompts_are_the_pipelines() {
    let info = goldens().info();
    assert_eq!(
        CAPTION_PROMPT_EN,
        info["prompts"]["en"].as_str().expect("en")
    );
    assert_eq!(
        CAPTION_PROMPT_ZH,
        info["prompts"]["zh"].as_str().expect("zh")
    );
}

#[test]
fn decode_skips_special_tokens_and_strips_as_the_processor() {
    let info = goldens().info();
    let tok = QwenTokenizer::from_folder(testdata("caption/tiny-layered-tied/processor"))
        .expect("the processor's tokenizer");
    let checks = info["decode_checks"].as_array().expect("decode_checks");
    assert!(checks.len() >= 5);
    for check in checks {
        let ids = ids_u32(&check["ids"]);
        let text = tok.decode(&ids, true).expect("decode");
        assert_eq!(text, check["text"].as_str().expect("text"), "{ids:?}");
        assert_eq!(
            text_encoder::caption::strip_like_python(&text),
            check["stripped"].as_str().expect("stripped"),
            "{ids:?}"
        );
    }
}

#[test]
fn lm_head_is_the_embedding_table_only_when_tied() {
    let dev = Default::default();
    for (folder, tied, source) in [
        (
            "caption/tiny-layered-tied",
            true,
            LmHeadSource::TiedEmbeddings,
        ),
        ("caption/tiny-layered-untied", false, LmHeadSource::Own),
    ] {
        let dir = testdata(folder).join("text_encoder");
        assert_eq!(tie_word_embeddings(&dir.join("config.json")).unwrap(), tied);
        let enc = QwenTextEncoder::<B>::load(&dir, &dev).expect("model");
        let head = LmHead::load(&dir, &enc, &dev).expect("head");
        assert_eq!(head.source(), source, "{folder}");
        assert_eq!(head.vocab_size(), enc.config().vocab_size);
    }
}

#[test]
fn an_untied_config_without_lm_head_is_an_error_naming_it() {
    // The tied checkpoint stores no lm_head.weight; claim it is untied.
    let src = testdata("caption/tiny-layered-tied/text_encoder");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("config"))
            .expect("json");
    cfg["tie_word_embeddings"] = Value::Bool(false);
    cfg["text_config"]["tie_word_embeddings"] = Value::Bool(false);
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).expect("write");
    std::fs::copy(
        src.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .expect("copy");
    let dev = Default::default();
    let enc = QwenTextEncoder::<B>::load(tmp.path(), &dev).expect("model");
    let err = LmHead::load(tmp.path(), &enc, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lm_head.weight") && err.contains("config.json"),
        "{err}"
    );
}

/// The cache changes nothing: the cached prefill equals the plain multimodal forward, and a
/// chunk of tokens after it (the masked path) equals feeding them one at a time.
#[test]
fn cached_forward_matches_the_uncached_model() {
    use burn::tensor::{Int, Tensor, TensorData};
    use text_encoder::MultimodalInputs;

    let dev = Default::default();
    let dir = testdata("caption/tiny-layered-untied/text_encoder");
    let enc = QwenTextEncoder::<B>::load(&dir, &dev).expect("model");
    let d = enc.config().hidden_size;
    let tok =
        QwenTokenizer::from_folder(testdata("caption/tiny-layered-untied/processor")).unwrap();
    let ids: Vec<u32> = tok
        .encode(
            "<|im_start|>user\nA small test of the cache<|im_end|>",
            false,
        )
        .unwrap();
    let l = ids.len();
    let int2 = |v: &[u32]| {
        Tensor::<B, 2, Int>::from_data(
            TensorData::new(
                v.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(),
                [1, v.len()],
            ),
            &dev,
        )
    };
    let positions = |start: usize, n: usize| {
        let p: Vec<i64> = (0..3)
            .flat_map(|_| (start..start + n).map(|i| i as i64))
            .collect();
        Tensor::<B, 3, Int>::from_data(TensorData::new(p, [3, 1, n]), &dev)
    };
    let full = enc
        .forward_multimodal(MultimodalInputs {
            input_ids: int2(&ids),
            attention_mask: Tensor::ones([1, l], &dev),
            image_embeds: None,
            position_ids: Some(positions(0, l)),
        })
        .expect("forward");
    let values = |t: Tensor<B, 3>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();

    // Prefill of the first l - 4 tokens, then the last 4 one by one, and as one chunk.
    let split = l - 4;
    let mut cache = KvCache::new(enc.config().num_hidden_layers);
    let head = enc
        .forward_cached(
            enc.embed_tokens(int2(&ids[..split])),
            positions(0, split),
            &mut cache,
        )
        .expect("prefill");
    let mut chunked = cache.clone();
    let mut rows = values(head);
    for i in split..l {
        let h = enc
            .forward_cached(
                enc.embed_tokens(int2(&ids[i..=i])),
                positions(i, 1),
                &mut cache,
            )
            .expect("step");
        rows.extend(values(h));
    }
    assert_eq!(cache.len(), l);
    let want = values(full);
    let err = max_rel_err(&rows, &want);
    assert!(err <= 1e-5, "one token at a time vs full forward: {err:e}");
    let tail = enc
        .forward_cached(
            enc.embed_tokens(int2(&ids[split..])),
            positions(split, 4),
            &mut chunked,
        )
        .expect("chunk");
    let err = max_rel_err(&values(tail), &want[split * d..]);
    assert!(
        err <= 1e-5,
        "a chunk after the prefill vs full forward: {err:e}"
    );
}

/// In bf16 (weights and activations, as the CUDA build runs) the prefill's logits — vision
/// tower, image scatter, M-RoPE prompt, LM head — stay within the bf16 tolerance of the other
/// bf16 tests of the f32 reference (3e-2 of the largest). Later steps depend on which token bf16
/// picks, so only the prefill is compared.
#[test]
fn bf16_prefill_logits_stay_close_to_the_f32_reference() {
    use burn::module::Module;
    use burn::tensor::FloatDType;
    use text_encoder::{GenerationConfig, ImageProcessor, VisionTower};
    use weights::CastFloats;

    let g = goldens();
    let dev = Default::default();
    for name in ["untied_en", "tied_zh_cap"] {
        let info = g.info()["cases"][name].clone();
        let root = testdata(info["folder"].as_str().expect("folder"));
        let dir = root.join("text_encoder");
        let enc = QwenTextEncoder::<B>::load(&dir, &dev)
            .expect("model")
            .map(&mut CastFloats(FloatDType::BF16));
        let tower = VisionTower::<B>::load(&dir, &dev)
            .expect("tower")
            .map(&mut CastFloats(FloatDType::BF16));
        let head = LmHead::load(&dir, &enc, &dev)
            .expect("head")
            .map(&mut CastFloats(FloatDType::BF16));
        let processor = ImageProcessor::from_preprocessor_config(
            root.join("processor/preprocessor_config.json"),
        )
        .expect("processor");
        let tok = QwenTokenizer::from_folder(root.join("processor")).expect("tokenizer");
        let c = Captioner::new(
            enc,
            tower,
            head,
            tok,
            processor,
            GenerationConfig::from_text_encoder_dir(&dir).expect("generation config"),
        );
        let lang =
            CaptionLanguage::from_use_en_prompt(info["use_en_prompt"].as_bool().expect("lang"));
        let inputs = c.prepare(&prompt_image(), lang).expect("inputs");
        let mut first = Vec::new();
        c.generate(&inputs, 1, |s| first = s.logits.to_vec())
            .expect("prefill");
        let (ids, _) = g.i64(&format!("{name}.logits.0.ids"));
        let (want, _) = g.f32(&format!("{name}.logits.0.values"));
        let ours: Vec<f32> = ids.iter().map(|&i| first[i as usize]).collect();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = ours
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        eprintln!("{name}: bf16 prefill logits max rel err {err:.3e}");
        assert!(err < 3e-2, "{name}: bf16 logits drift: {err:e}");
    }
}
