//! The case file's parser and its mapping onto requests (formerly `pipeline::case`'s unit tests):
//! ids, line numbers in errors, images, every field reaching the request, both default sets.

use std::path::Path;

use cases::{Case, Defaults, Error, GeneratorKind, ImageSource, SglangPreset};
use cases::{parse, parse_suite, valid_id};
use pipeline::InitialLatents;
use torch_rng::{CudaPlatform, GeneratorDevice};

fn p(text: &str) -> Result<Vec<Case>, Error> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cases/x.toml");
    parse(text, &dir)
}

#[test]
fn ids_are_restricted() {
    for ok in ["qwen_image_t2i", "a.b-c_1"] {
        assert!(valid_id(ok));
    }
    for bad in ["", "..", "../x", "a/b", "a b", "é"] {
        assert!(!valid_id(bad), "{bad}");
    }
}

#[test]
fn an_empty_prompt_is_a_caption_request_only_for_layered_cases() {
    let case = |extra: &str| {
        format!("[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"\"\n{extra}")
    };
    let e = p(&case("")).unwrap_err().to_string();
    assert!(e.contains("empty prompt"), "{e}");
    let cases = p(&case("layers = 2\n")).unwrap();
    assert_eq!(cases[0].prompt, "");
}

#[test]
fn bad_case_files_name_the_line() {
    let head = "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n";
    let e = p(&format!("{head}colour = 3\n")).unwrap_err().to_string();
    assert!(e.contains("x.toml:5") && e.contains("colour"), "{e}");
    let e = p("[[case]]\nid = \"../evil\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml:2") && e.contains("../evil"), "{e}");
    let e = p("[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml:1") && e.contains("prompt"), "{e}");
    let e = p(&format!("{head}output_format = \"gif\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gif"), "{e}");
    let e = p("[[case]]\nid = \"a\"\nmodel = \"nowhere\"\nprompt = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x.toml:1") && e.contains("neither a folder"),
        "{e}"
    );
}

#[test]
fn images_are_files_or_urls_in_order() {
    let head = "[[case]]\nid = \"e\"\nmodel = \"../tiny-qwen-image-edit-plus\"\nprompt = \"x\"\n";
    let c = &p(&format!(
        "{head}image = [\"../e2e-edit/plus_gray.png\", \"https://example.com/a.jpg\"]\n"
    ))
    .unwrap()[0];
    assert!(matches!(&c.images[0], ImageSource::File(f) if f.ends_with("e2e-edit/plus_gray.png")));
    assert_eq!(
        c.images[1],
        ImageSource::Url("https://example.com/a.jpg".into())
    );
    // No size given: the request leaves it to the pipeline (Edit: from the last image).
    let r = c.request();
    assert_eq!((r.height, r.width), (None, None));
    // Files are read as load_image reads them; a URL goes through the caller's fetcher,
    // whose refusal names the URL and the case.
    let e = c
        .request_with_images(&mut |u| Err(format!("offline: {u} not cached")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("case `e`") && e.contains("https://example.com/a.jpg"),
        "{e}"
    );
    let one = &p(&format!("{head}image = \"../e2e-edit/edit_input.jpg\"\n")).unwrap()[0];
    let r = one
        .request_with_images(&mut |u| Err(u.to_string()))
        .unwrap();
    assert_eq!(r.images.len(), 1);
    assert_eq!(r.images[0].size(), (53, 37));

    for (bad, why) in [
        ("image = \"../e2e-edit/missing.png\"", "does not exist"),
        ("image = []", "lists no image"),
        ("image = \"ftp://example.com/a.png\"", "neither a file nor"),
        ("image = 3", "image"),
    ] {
        let e = p(&format!("{head}{bad}\n")).unwrap_err().to_string();
        assert!(e.contains("x.toml:") && e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn every_field_reaches_the_request() {
    let text = "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n\
                negative_prompt = \" \"\nguidance_scale = 2.5\nheight = 48\nwidth = 80\n\
                num_inference_steps = 3\nseed = 7\n";
    let c = &p(text).unwrap()[0];
    let r = c.request();
    assert_eq!(r.guidance().unwrap().scale(), Some(2.5));
    assert_eq!(
        (r.height, r.width, r.num_inference_steps),
        (Some(48), Some(80), 3)
    );
    assert!(matches!(r.latents, InitialLatents::Seed(7)));
    assert_eq!(r.negative_prompt.as_deref(), Some(" "));
}

#[test]
fn sglang_defaults_fill_what_a_case_leaves_out() {
    let text = "defaults = \"sglang\"\n\
                [[case]]\nid = \"t2i\"\nmodel = \"Qwen/Qwen-Image\"\nprompt = \"x\"\n\
                height = 1024\nwidth = 1024\n\
                [[case]]\nid = \"plus\"\nmodel = \"Qwen/Qwen-Image-Edit-2511\"\nprompt = \"x\"\n\
                [[case]]\nid = \"layered\"\nmodel = \"Qwen/Qwen-Image-Layered\"\n\
                output_format = \"png\"\n\
                [[case]]\nid = \"nvfp4\"\nmodel = \"lmsys/qwen-image-2512-modelopt-nvfp4-sglang\"\n\
                prompt = \"x\"\nseed = 0\nnum_inference_steps = 12\ngenerator = \"cpu\"\n\
                skip = \"nvfp4\"\n";
    let suite = parse_suite(text, Path::new("/nowhere/s.toml")).unwrap();
    assert_eq!(suite.defaults, Defaults::Sglang);
    let [t2i, plus, layered, nvfp4] = &suite.cases[..] else {
        panic!("four cases")
    };
    assert_eq!(t2i.preset, Some(SglangPreset::QwenImage));
    assert_eq!(t2i.negative_prompt.as_deref(), Some(" "));
    assert_eq!(t2i.guidance_scale, Some(4.0));
    assert_eq!(t2i.true_cfg_scale, None);
    assert_eq!((t2i.num_inference_steps, t2i.seed), (50, Some(42)));
    assert_eq!(
        (t2i.generator, t2i.output_format.as_str()),
        (GeneratorKind::Cuda, "jpg")
    );
    // guidance_scale becomes the true-CFG scale (upstream's official GT maps it so).
    assert_eq!(t2i.request().guidance().unwrap().scale(), Some(4.0));
    assert!(matches!(
        t2i.request_on(CudaPlatform::B200).latents,
        InitialLatents::Seeded(42, GeneratorDevice::Cuda(CudaPlatform::B200))
    ));
    assert_eq!(plus.preset, Some(SglangPreset::EditPlus));
    assert_eq!(plus.num_inference_steps, 40);
    assert_eq!(layered.preset, Some(SglangPreset::Layered));
    assert_eq!((layered.height, layered.width), (None, None));
    assert_eq!(SglangPreset::Layered.resolution(), Some(640));
    assert_eq!((plus.height, plus.width), (None, None));
    assert_eq!(layered.prompt, " ");
    assert_eq!(layered.output_format, "png");
    assert!(layered.defaulted.iter().any(|d| d == "prompt = \" \""));
    assert_eq!(nvfp4.preset, Some(SglangPreset::QwenImage2512));
    assert!(
        nvfp4
            .negative_prompt
            .as_deref()
            .unwrap()
            .starts_with("低分辨率")
    );
    assert_eq!((nvfp4.seed, nvfp4.num_inference_steps), (Some(0), 12));
    assert_eq!(nvfp4.generator, GeneratorKind::Cpu);
    assert_eq!(nvfp4.skip.as_deref(), Some("nvfp4"));
}

#[test]
fn diffusers_defaults_keep_the_tiny_cases_as_they_were() {
    let c = &p("[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\nseed = 3\n")
        .unwrap()[0];
    assert_eq!((c.height, c.width, c.num_inference_steps), (None, None, 50));
    assert_eq!(c.negative_prompt, None);
    assert_eq!(c.guidance_scale, None);
    assert_eq!(
        (c.generator, c.output_format.as_str()),
        (GeneratorKind::Cpu, "png")
    );
    assert_eq!(c.preset, None);
    assert!(matches!(c.request().latents, InitialLatents::Seed(3)));
    assert_eq!(
        c.initial_latents().generator().as_deref(),
        Some("torch-cpu")
    );
}

#[test]
fn a_local_folder_takes_its_preset_from_model_index() {
    let text = "defaults = \"sglang\"\n[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image-edit-plus\"\nprompt = \"x\"\n";
    let c = &p(text).unwrap()[0];
    assert_eq!(c.preset, Some(SglangPreset::EditPlus));
    assert_eq!(c.num_inference_steps, 40);
}

#[test]
fn suite_keys_and_new_fields_are_checked() {
    let head = "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n";
    let e = p(&format!("defaults = \"comfy\"\n{head}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml:1") && e.contains("comfy"), "{e}");
    let e = p(&format!("thresholds = \"nope.json\"\n{head}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml:1") && e.contains("nope.json"), "{e}");
    let e = p(&format!("{head}generator = \"tpu\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml:1") && e.contains("tpu"), "{e}");
    let e = p(&format!("{head}skip = \" \"\n")).unwrap_err().to_string();
    assert!(e.contains("reason"), "{e}");
    let e =
        p("defaults = \"sglang\"\n[[case]]\nid = \"a\"\nmodel = \"acme/flux\"\nprompt = \"x\"\n")
            .unwrap_err()
            .to_string();
    assert!(e.contains("SGLang") && e.contains("acme/flux"), "{e}");
    let e = p("[[case]]\nid = \"a\"\nmodel = \"Qwen/Qwen-Image-Layered\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no prompt"), "{e}");
    let suite = parse_suite(
        &format!("gt_root = \"gt\"\nthresholds = \"tiny.toml\"\n{head}generator = \"cuda\"\n"),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cases/x.toml"),
    )
    .unwrap();
    assert!(suite.gt_root.unwrap().ends_with("cases/gt"));
    assert!(suite.thresholds.unwrap().is_file());
    assert!(matches!(
        suite.cases[0].request().latents,
        InitialLatents::Seeded(0, GeneratorDevice::Cuda(CudaPlatform::H100))
    ));
}

#[test]
fn a_whitespace_only_layered_prompt_is_captioned_as_sglang_does_under_its_defaults() {
    let case = |defaults: &str, prompt: &str| {
        let text = format!(
            "{defaults}[[case]]\nid = \"l\"\nmodel = \"Qwen/Qwen-Image-Layered\"\nprompt = {}\nlayers = 2\n",
            toml::Value::String(prompt.into())
        );
        parse(&text, Path::new("/nowhere/s.toml")).unwrap()[0].request()
    };
    // SGLang: `prompt.isspace()` → captioned (the pipeline captions "").
    for p in ["\t\n ", "  ", "\u{3000}", "\u{1f}"] {
        let r = case("defaults = \"sglang\"\n", p);
        assert_eq!(r.prompt, "", "{p:?}");
        assert!(pipeline::needs_caption(Some(&r.prompt)));
    }
    assert_eq!(case("defaults = \"sglang\"\n", " a cat ").prompt, " a cat ");
    // diffusers: only None, "" and " " are captioned; two spaces are a prompt.
    let r = case("", "  ");
    assert_eq!(r.prompt, "  ");
    assert!(!pipeline::needs_caption(Some(&r.prompt)));
}

#[test]
fn vision_positions_reach_the_request() {
    let head = "[[case]]\nid = \"e\"\nmodel = \"../tiny-qwen-image-edit-plus\"\nprompt = \"x\"\n\
                image = \"../e2e-edit/edit_input.jpg\"\n";
    let c = &p(head).unwrap()[0];
    assert_eq!(c.vision_positions, pipeline::VisionPositions::Mrope);
    let c = &p(&format!("{head}vision_positions = \"sequential\"\n")).unwrap()[0];
    assert_eq!(c.vision_positions, pipeline::VisionPositions::Sequential);
    assert_eq!(
        c.request().vision_positions,
        pipeline::VisionPositions::Sequential
    );
    let e = p(&format!("{head}vision_positions = \"3d\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml:1") && e.contains("3d"), "{e}");
}

#[test]
fn layered_keys_on_a_model_that_is_not_layered_make_the_case_refused() {
    for (model, extra) in [
        ("../tiny-qwen-image", "layers = 2\n"),
        ("../tiny-qwen-image", "resolution = 640\n"),
        ("Qwen/Qwen-Image", "cfg_normalize = true\n"),
    ] {
        let text = format!("[[case]]\nid = \"a\"\nmodel = \"{model}\"\nprompt = \"x\"\n{extra}");
        let c = &p(&text).unwrap()[0];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("case `a`") && e.contains("QwenImageLayeredPipeline"),
            "{model} {extra}: {e}"
        );
    }
    // On a Layered model, or a model whose kind is not known here, they stand.
    for model in ["../tiny-qwen-image-layered", "acme/something"] {
        let text =
            format!("[[case]]\nid = \"a\"\nmodel = \"{model}\"\nprompt = \"x\"\nlayers = 2\n");
        assert!(p(&text).unwrap()[0].refused.is_none(), "{model}");
    }
}
