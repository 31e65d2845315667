//! The tiny official pipeline's checkpoints load strictly: shapes checked, bf16 converted, unused
//! tensors reported, bad files named.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::Tensor;
use weights::{Error, PipelineDir, Weights};

type B = Flex;

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image")
}

#[test]
fn pipeline_dir_reads_model_index_and_configs() {
    let p = PipelineDir::open(tiny()).unwrap();
    assert_eq!(
        p.component_class("tokenizer"),
        Some(("transformers".into(), "Qwen2Tokenizer".into()))
    );
    let cfg = p.component_config("transformer").unwrap();
    assert_eq!(cfg["num_layers"], 2);
    let sched = p.component_config("scheduler").unwrap();
    assert_eq!(sched["shift_terminal"], 0.02);
    assert!(matches!(p.component("nope"), Err(Error::Pipeline { .. })));
}

#[test]
fn loads_f32_and_bf16_and_checks_shapes() {
    let dev = Default::default();
    let dit = Weights::open(tiny().join("transformer")).unwrap();
    let t: Tensor<B, 2> = dit.get("img_in.weight", [64, 64], &dev).unwrap();
    assert_eq!(t.dims(), [64, 64]);
    let err = dit
        .get::<B, 2>("img_in.weight", [64, 32], &dev)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("img_in.weight")
            && msg.contains("[64, 32]")
            && msg.contains("diffusion_pytorch_model.safetensors"),
        "{msg}"
    );
    let err = dit.get::<B, 1>("no.such", [1], &dev).unwrap_err();
    assert!(err.to_string().contains("no.such"));

    let te = Weights::open(tiny().join("text_encoder")).unwrap();
    let (vals, shape) = te.get_f32("model.norm.weight").unwrap();
    assert_eq!(shape, vec![32]);
    assert!(vals.iter().all(|v| v.is_finite()));
    assert_eq!(
        te.dtype("model.norm.weight"),
        Some(weights::StoredDType::BF16)
    );
}

#[test]
fn linear_is_transposed_from_pytorch_layout() {
    let dev = Default::default();
    let dit = Weights::open(tiny().join("transformer")).unwrap();
    let lin = dit.linear::<B>("txt_in", 32, 64, true, &dev).unwrap();
    assert_eq!(lin.weight.val().dims(), [32, 64]);
    let (w, _) = dit.get_f32("txt_in.weight").unwrap();
    let got = lin.weight.val().into_data().to_vec::<f32>().unwrap();
    // PyTorch [out=64, in=32] row-major; burn [in, out].
    assert_eq!(got[3 * 64 + 5], w[5 * 32 + 3]);
}

#[test]
fn strict_check_reports_unused_tensors() {
    let dev = Default::default();
    let dit = Weights::open(tiny().join("transformer")).unwrap();
    let _ = dit.get::<B, 2>("img_in.weight", [64, 64], &dev).unwrap();
    let err = dit.check_all_used(&[]).unwrap_err();
    assert!(matches!(err, Error::Unexpected { .. }));
    assert!(
        dit.check_all_used(&[
            "transformer_blocks",
            "txt",
            "time",
            "norm_out",
            "proj_out",
            "img_in.bias"
        ])
        .is_ok()
    );
}

#[test]
fn sharded_index_and_corrupt_files_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny().join("transformer/diffusion_pytorch_model.safetensors");
    std::fs::copy(
        &src,
        dir.path()
            .join("diffusion_pytorch_model-00001-of-00001.safetensors"),
    )
    .unwrap();
    let w = Weights::open(&src).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = w
        .names()
        .into_iter()
        .map(|n| {
            (
                n.to_string(),
                "diffusion_pytorch_model-00001-of-00001.safetensors".into(),
            )
        })
        .collect();
    std::fs::write(
        dir.path()
            .join("diffusion_pytorch_model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    let sharded = Weights::open(dir.path()).unwrap();
    assert_eq!(sharded.names().len(), w.names().len());

    // A shard cut short is a clear error naming the file.
    let bytes = std::fs::read(&src).unwrap();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let msg = Weights::open(&bad).unwrap_err().to_string();
    assert!(msg.contains("bad.safetensors"), "{msg}");

    // An index naming a missing shard names it.
    let d2 = tempfile::tempdir().unwrap();
    std::fs::write(
        d2.path().join("model.safetensors.index.json"),
        r#"{"weight_map": {"a": "model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let msg = Weights::open(d2.path()).unwrap_err().to_string();
    assert!(msg.contains("model-00001-of-00002.safetensors"), "{msg}");
}

#[test]
fn offline_repo_id_not_in_cache_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    // SAFETY: tests in this binary that read these variables run in this function only.
    unsafe {
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var("HF_HOME", cache.path());
    }
    let msg = weights::resolve_pipeline("Qwen/Qwen-Image", None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("Qwen/Qwen-Image") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );
}
