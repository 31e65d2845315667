//! Which pipeline a folder is: [`PipelineKind`], from `_class_name` in `model_index.json`.

use weights::PipelineDir;

use crate::error::Error;

/// The diffusers pipeline class a folder declares. A new kind is a variant here, with its class
/// name in [`PipelineKind::ALL`], and a [`crate::Pipeline`] variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PipelineKind {
    /// `QwenImagePipeline` (Qwen-Image, Qwen-Image-2512): text to image.
    TextToImage,
    /// `QwenImageEditPipeline` (Qwen-Image-Edit): one input image.
    Edit,
    /// `QwenImageEditPlusPipeline` (Qwen-Image-Edit-2509, -2511): one or more input images.
    EditPlus,
    /// `QwenImageLayeredPipeline` (Qwen-Image-Layered): one input image, decomposed into RGBA
    /// layers.
    Layered,
}

impl PipelineKind {
    /// Every kind this crate runs.
    pub const ALL: &'static [PipelineKind] = &[
        PipelineKind::TextToImage,
        PipelineKind::Edit,
        PipelineKind::EditPlus,
        PipelineKind::Layered,
    ];

    /// The diffusers class name.
    pub fn class_name(self) -> &'static str {
        match self {
            PipelineKind::TextToImage => "QwenImagePipeline",
            PipelineKind::Edit => "QwenImageEditPipeline",
            PipelineKind::EditPlus => "QwenImageEditPlusPipeline",
            PipelineKind::Layered => "QwenImageLayeredPipeline",
        }
    }

    /// The kind of a diffusers class name, if this crate runs it.
    pub fn from_class_name(class: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.class_name() == class)
    }

    /// The kind a pipeline folder declares. A `model_index.json` without `_class_name` is taken
    /// as text to image (as the text encoder's template choice does); an unknown class is an
    /// error naming the file and the classes this crate runs.
    pub fn of(dir: &PipelineDir) -> Result<Self, Error> {
        let index = dir.root().join("model_index.json");
        match dir
            .model_index()
            .get("_class_name")
            .and_then(|v| v.as_str())
        {
            None => Ok(PipelineKind::TextToImage),
            Some(class) => Self::from_class_name(class).ok_or_else(|| Error::PipelineClass {
                path: index,
                reason: format!(
                    "pipeline class `{class}` is not one this port runs ({})",
                    Self::known()
                ),
            }),
        }
    }

    /// Whether requests take input images.
    pub fn takes_images(self) -> bool {
        !matches!(self, PipelineKind::TextToImage)
    }

    fn known() -> String {
        Self::ALL
            .iter()
            .map(|k| k.class_name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.class_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for &k in PipelineKind::ALL {
            assert_eq!(PipelineKind::from_class_name(k.class_name()), Some(k));
        }
        assert_eq!(
            PipelineKind::from_class_name("QwenImageLayeredPipeline"),
            Some(PipelineKind::Layered)
        );
        assert_eq!(PipelineKind::from_class_name("FluxPipeline"), None);
        assert!(!PipelineKind::TextToImage.takes_images());
        assert!(PipelineKind::EditPlus.takes_images());
    }
}
