//! Checkpoints in every layout the released models use load to the same model, and broken ones
//! are refused with an error that names the tensor and the file.

use crate::common;

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use common::{B, Entry, edited_copy, tiny_text_encoder, values, write_entries};
use safetensors::Dtype;
use serde_json::json;
use text_encoder::{Error, QwenTextEncoder, TextConfig};

fn load(dir: &Path) -> Result<QwenTextEncoder<B>, Error> {
    QwenTextEncoder::load(dir, &Default::default())
}

/// Final hidden states on a short padded batch: enough to tell two models apart.
fn probe(enc: &QwenTextEncoder<B>) -> Vec<f32> {
    let ids = vec![
        151644i64, 8948, 198, 32, 8251, 389, 264, 3241, 2, 151645, 0, 0,
    ];
    let mask = vec![1i64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    let dev = Default::default();
    let t = |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [2, 6]), &dev);
    values(enc.forward(t(ids), t(mask)).expect("forward"))
}

fn reference() -> Vec<f32> {
    probe(&load(&tiny_text_encoder()).expect("the tiny text encoder loads"))
}

fn err_of(dir: &Path) -> String {
    load(dir).expect_err("must be refused").to_string()
}

#[test]
fn the_transformers_5_language_model_layout_loads_to_the_same_model() {
    let dir = edited_copy(|entries| {
        for e in entries.iter_mut() {
            e.name = match e.name.strip_prefix("model.") {
                Some(rest) => format!("model.language_model.{rest}"),
                None => format!("model.{}", e.name), // visual.* → model.visual.*
            };
        }
        assert!(entries.iter().any(|e| e.name.starts_with("model.visual.")));
    });
    assert_eq!(probe(&load(dir.path()).expect("loads")), reference());
}

#[test]
fn a_sharded_checkpoint_with_an_index_loads_to_the_same_model() {
    let dir = edited_copy(|_| {});
    let entries = common::read_entries(&dir.path().join("model.safetensors"));
    std::fs::remove_file(dir.path().join("model.safetensors")).expect("rm");
    let (a, b): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| e.name.contains("layers.0."));
    let shards = [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ];
    let mut map = serde_json::Map::new();
    for (file, entries) in &shards {
        write_entries(&dir.path().join(file), entries);
        for e in entries {
            map.insert(e.name.clone(), json!(file));
        }
    }
    let index = json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .expect("index");
    assert_eq!(probe(&load(dir.path()).expect("loads")), reference());
}

#[test]
fn an_f32_checkpoint_loads_to_the_same_model() {
    let dir = edited_copy(|entries| {
        for e in entries.iter_mut().filter(|e| e.dtype == Dtype::BF16) {
            // bf16 → f32 is exact: the bf16 bits are the high half of the f32.
            e.data = e
                .data
                .chunks_exact(2)
                .flat_map(|b| [0, 0, b[0], b[1]])
                .collect();
            e.dtype = Dtype::F32;
        }
    });
    assert_eq!(probe(&load(dir.path()).expect("loads")), reference());
}

#[test]
fn an_lm_head_and_the_vision_tower_are_skipped_without_error() {
    let dir = edited_copy(|entries| {
        let embed = entries
            .iter()
            .find(|e| e.name == "model.embed_tokens.weight")
            .expect("embed");
        let head = Entry {
            name: "lm_head.weight".into(),
            dtype: embed.dtype,
            shape: embed.shape.clone(),
            data: embed.data.clone(),
        };
        entries.push(head);
    });
    assert_eq!(probe(&load(dir.path()).expect("loads")), reference());
}

#[test]
fn a_missing_tensor_is_an_error_naming_the_tensor_and_the_file() {
    let dir =
        edited_copy(|entries| entries.retain(|e| e.name != "model.layers.1.self_attn.k_proj.bias"));
    let msg = err_of(dir.path());
    assert!(
        msg.contains("model.layers.1.self_attn.k_proj.bias"),
        "{msg}"
    );
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn a_wrong_shape_is_an_error_naming_the_tensor_the_file_and_both_shapes() {
    let dir = edited_copy(|entries| {
        let e = entries
            .iter_mut()
            .find(|e| e.name == "model.layers.0.mlp.up_proj.weight")
            .expect("up");
        e.shape = vec![32, 64]; // [64, 32] transposed: same bytes, wrong layout
    });
    let msg = err_of(dir.path());
    for part in [
        "model.layers.0.mlp.up_proj.weight",
        "model.safetensors",
        "[32, 64]",
        "[64, 32]",
    ] {
        assert!(msg.contains(part), "`{part}` not in: {msg}");
    }
}

#[test]
fn a_wrong_dtype_is_an_error_naming_the_tensor_and_the_file() {
    let dir = edited_copy(|entries| {
        let e = entries
            .iter_mut()
            .find(|e| e.name == "model.norm.weight")
            .expect("norm");
        e.dtype = Dtype::I16; // same byte size as bf16
    });
    let msg = err_of(dir.path());
    assert!(
        msg.contains("model.norm.weight") && msg.contains("model.safetensors"),
        "{msg}"
    );
    assert!(msg.contains("I16"), "{msg}");
}

#[test]
fn an_unexpected_language_model_tensor_is_refused() {
    let dir = edited_copy(|entries| {
        let norm = entries
            .iter()
            .find(|e| e.name == "model.norm.weight")
            .expect("norm");
        let extra = Entry {
            name: "model.layers.2.input_layernorm.weight".into(),
            dtype: norm.dtype,
            shape: norm.shape.clone(),
            data: norm.data.clone(),
        };
        entries.push(extra);
    });
    let msg = err_of(dir.path());
    assert!(
        msg.contains("model.layers.2.input_layernorm.weight"),
        "{msg}"
    );
}

#[test]
fn a_transformers_4_flat_config_gives_the_same_sizes_as_the_nested_one() {
    let path = tiny_text_encoder().join("config.json");
    let nested = TextConfig::from_file(&path).expect("nested config");
    let text =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).expect("read"))
            .expect("json")["text_config"]
            .clone();
    // transformers 4.x: text keys at the top level, `rope_theta` beside an mrope `rope_scaling`.
    let mut flat = text.as_object().expect("object").clone();
    flat.remove("rope_parameters");
    flat.insert("rope_theta".into(), json!(1000000.0));
    flat.insert(
        "rope_scaling".into(),
        json!({"type": "mrope", "mrope_section": [2, 3, 3]}),
    );
    let flat = TextConfig::from_json(&serde_json::Value::Object(flat), Path::new("flat.json"))
        .expect("flat");
    assert_eq!(flat, nested);
    assert_eq!(nested.head_dim(), 16);
    assert_eq!(nested.rope_theta, 1e6);
}

#[test]
fn rope_theta_is_read_from_wherever_the_config_keeps_it() {
    let base = json!({"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                      "num_attention_heads": 2, "vocab_size": 10});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        TextConfig::from_json(&c, Path::new("config.json"))
    };
    let theta = |c: Result<TextConfig, Error>| c.expect("valid").rope_theta;
    assert_eq!(
        theta(with(
            "rope_parameters",
            json!({"rope_type": "default", "rope_theta": 5e5})
        )),
        5e5
    );
    assert_eq!(
        theta(with(
            "rope_scaling",
            json!({"rope_type": "default", "rope_theta": 2e4})
        )),
        2e4
    );
    assert_eq!(theta(with("rope_theta", json!(1e4))), 1e4);
    assert_eq!(theta(with("text_config", json!({"rope_theta": 3e3}))), 3e3);
    assert_eq!(
        theta(with("unrelated", json!(0))),
        1e6,
        "transformers' default"
    );
    let yarn = with(
        "rope_parameters",
        json!({"rope_type": "yarn", "rope_theta": 1e6}),
    );
    assert!(matches!(yarn, Err(Error::Config { .. })));
    let gelu = with("hidden_act", json!("gelu"));
    assert!(
        gelu.expect_err("gelu refused")
            .to_string()
            .contains("config.json")
    );
    let bad_heads = with("num_key_value_heads", json!(3));
    assert!(bad_heads.is_err(), "2 query heads cannot share 3 KV heads");
}

#[test]
fn a_missing_config_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = err_of(dir.path());
    assert!(msg.contains("config.json"), "{msg}");
}
