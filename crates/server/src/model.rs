//! The one model a server serves: the id clients address it by ([`ServedModel`]), and what the
//! loaded pipeline is ([`Loaded`]: its kind and the SGLang sampling defaults that fill the
//! fields a request leaves out).

use std::path::Path;

use cases::SglangPreset;
use pipeline::PipelineKind;
use serde_json::{Value, json};

/// The id of the served model and the names a request's `model` may use for it.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// What `/v1/models` lists: `--served-model-name`, else the repo id, else the folder's name.
    pub id: String,
    /// `--model` as given (a repo id or a folder).
    pub root: String,
    /// Unix time the server started.
    pub created: u64,
}

impl ServedModel {
    /// The id for `--model MODEL [--served-model-name NAME]`.
    pub fn new(model: &str, served_name: Option<&str>) -> Self {
        let id = match served_name {
            Some(n) => n.to_string(),
            None if Path::new(model).is_dir() => folder_name(model),
            None => model.to_string(),
        };
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            id,
            root: model.to_string(),
            created,
        }
    }

    /// Whether a request's `model` names this model: the id, `--model` as given, or the last
    /// component of either (SGLang's clients send the model path they launched the server with).
    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('/');
        [self.id.as_str(), self.root.as_str()]
            .iter()
            .any(|m| *m == name || folder_name(m) == name || folder_name(name) == *m)
    }

    /// The `/v1/models` card (OpenAI's fields and SGLang's extended ones).
    pub fn card(&self, loaded: Option<&Loaded>) -> Value {
        let mut card = json!({
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": "qwen-image-rs",
            "root": self.root,
            "num_gpus": 1,
        });
        if let Some(l) = loaded {
            card["task_type"] = json!(if l.kind.takes_images() { "I2I" } else { "T2I" });
            card["pipeline_class"] = json!(l.kind.class_name());
            card["pipeline_name"] = json!(l.kind.class_name());
            card["sampling_defaults"] = json!(l.preset.class_name());
        }
        card
    }
}

/// The last path component of a folder (or a repo id's name part).
fn folder_name(model: &str) -> String {
    Path::new(model.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| model.to_string())
}

/// What was loaded.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    pub kind: PipelineKind,
    /// SGLang's sampling defaults for this model.
    pub preset: SglangPreset,
}

impl Loaded {
    /// The kind, and the preset SGLang's registry picks: by the repo id's name (which tells
    /// Qwen-Image-2512 from Qwen-Image), else — and always for a local folder, whose name says
    /// nothing reliable — by the folder's pipeline class.
    pub fn new(model: &str, kind: PipelineKind) -> Self {
        let by_class = SglangPreset::from_class_name(kind.class_name());
        let by_path = (!Path::new(model).is_dir())
            .then(|| SglangPreset::from_model_path(model))
            .flatten();
        // The name only refines what the class says (2512 is a QwenImagePipeline); a name that
        // says another kind than the folder declares loses to the folder.
        let preset = match (by_path, by_class) {
            (Some(SglangPreset::QwenImage2512), Some(SglangPreset::QwenImage)) => {
                SglangPreset::QwenImage2512
            }
            (_, Some(c)) => c,
            (p, None) => p.unwrap_or(SglangPreset::QwenImage),
        };
        Self { kind, preset }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_served_name_the_repo_or_the_folder() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/tiny-qwen-image"
        );
        let m = ServedModel::new(dir, None);
        assert_eq!(m.id, "tiny-qwen-image");
        assert!(m.matches("tiny-qwen-image") && m.matches(dir) && !m.matches("other"));
        assert_eq!(
            ServedModel::new("Qwen/Qwen-Image", None).id,
            "Qwen/Qwen-Image"
        );
        let named = ServedModel::new("Qwen/Qwen-Image", Some("qwen"));
        assert!(named.matches("qwen") && named.matches("Qwen/Qwen-Image"));
        assert_eq!(named.card(None)["id"], "qwen");
    }

    #[test]
    fn presets_follow_sglang_registry() {
        let l = Loaded::new("Qwen/Qwen-Image-2512", PipelineKind::TextToImage);
        assert_eq!(l.preset, SglangPreset::QwenImage2512);
        let l = Loaded::new("Qwen/Qwen-Image-Edit-2511", PipelineKind::EditPlus);
        assert_eq!(l.preset, SglangPreset::EditPlus);
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/tiny-qwen-image-layered"
        );
        assert_eq!(
            Loaded::new(dir, PipelineKind::Layered).preset,
            SglangPreset::Layered
        );
    }
}
