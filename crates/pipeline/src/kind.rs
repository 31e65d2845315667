//! Which pipeline a folder is ([`PipelineKind`], from `_class_name` in `model_index.json`) and
//! one type that loads and runs any of them ([`Pipeline`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::backend::Backend;
use weights::PipelineDir;

use crate::edit::QwenImageEditPipeline;
use crate::layered::QwenImageLayeredPipeline;
use crate::{Error, Event, Output, QwenImagePipeline, Request};

/// The diffusers pipeline class a folder declares. New kinds (Layered) are added as variants
/// here, with their class name in [`PipelineKind::ALL`] and a [`Pipeline`] variant.
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

    /// `Ok` when `self` is one of `wanted`, else an error naming the folder's class and the type
    /// that loads it.
    pub(crate) fn expect_one_of(
        self,
        wanted: &[PipelineKind],
        dir: &PipelineDir,
        loader: &str,
    ) -> Result<(), Error> {
        if wanted.contains(&self) {
            return Ok(());
        }
        Err(Error::PipelineClass {
            path: dir.root().join("model_index.json"),
            reason: format!(
                "the folder declares {}, which {loader} does not run (pipeline::Pipeline loads \
                 any kind)",
                self.class_name()
            ),
        })
    }
}

impl std::fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.class_name())
    }
}

/// Any Qwen-Image pipeline, chosen by the folder's `_class_name`: what the CLI and the
/// consistency runner load when they do not know the model in advance. (Each pipeline is boxed:
/// they differ in size, and a pipeline is moved around whole.)
///
/// ```no_run
/// use burn::backend::Flex;
/// use pipeline::{InputImage, Pipeline, PipelineKind, Request};
///
/// let pipe = Pipeline::<Flex>::load("testdata/tiny-qwen-image-edit", &Default::default())?;
/// assert_eq!(pipe.kind(), PipelineKind::Edit);
/// let req = Request::edit("Make the sky purple", vec![InputImage::load("in.png")?]).steps(4);
/// let out = pipe.generate(&req, &mut |_| {})?;
/// # Ok::<(), pipeline::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Pipeline<B: Backend> {
    /// [`PipelineKind::TextToImage`].
    TextToImage(Box<QwenImagePipeline<B>>),
    /// [`PipelineKind::Edit`] and [`PipelineKind::EditPlus`].
    Edit(Box<QwenImageEditPipeline<B>>),
    /// [`PipelineKind::Layered`].
    Layered(Box<QwenImageLayeredPipeline<B>>),
}

impl<B: Backend> Pipeline<B> {
    /// Load a local diffusers-layout folder or an HF repo id (through the shared HF cache).
    pub fn load(model: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        Self::load_revision(&model.as_ref().to_string_lossy(), None, device)
    }

    /// [`Self::load`] with an HF revision (branch, tag or commit) for a repo id; `None` = `main`.
    pub fn load_revision(
        model: &str,
        revision: Option<&str>,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let dir = weights::resolve_pipeline(model, revision)?;
        Self::from_dir(&dir, device)
    }

    /// Load from an opened pipeline folder, as its `_class_name` says.
    pub fn from_dir(dir: &PipelineDir, device: &B::Device) -> Result<Self, Error> {
        Ok(match PipelineKind::of(dir)? {
            PipelineKind::TextToImage => {
                Self::TextToImage(Box::new(QwenImagePipeline::from_dir(dir, device)?))
            }
            PipelineKind::Edit | PipelineKind::EditPlus => {
                Self::Edit(Box::new(QwenImageEditPipeline::from_dir(dir, device)?))
            }
            PipelineKind::Layered => {
                Self::Layered(Box::new(QwenImageLayeredPipeline::from_dir(dir, device)?))
            }
        })
    }

    /// What was loaded.
    pub fn kind(&self) -> PipelineKind {
        match self {
            Self::TextToImage(_) => PipelineKind::TextToImage,
            Self::Edit(p) => p.kind(),
            Self::Layered(_) => PipelineKind::Layered,
        }
    }

    /// Run one generation (see each pipeline's `generate`).
    pub fn generate(
        &self,
        req: &Request,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Output<B>, Error> {
        match self {
            Self::TextToImage(p) => p.generate(req, on_event),
            Self::Edit(p) => p.generate(req, on_event),
            Self::Layered(p) => p.generate(req, on_event),
        }
    }

    /// A flag that, once set, stops the loop after the current step with [`Error::Cancelled`].
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        match self {
            Self::TextToImage(p) => p.cancel_flag(),
            Self::Edit(p) => p.cancel_flag(),
            Self::Layered(p) => p.cancel_flag(),
        }
    }

    /// Share one cancel flag between several pipelines.
    pub fn with_cancel_flag(self, flag: Arc<AtomicBool>) -> Self {
        match self {
            Self::TextToImage(p) => Self::TextToImage(Box::new(p.with_cancel_flag(flag))),
            Self::Edit(p) => Self::Edit(Box::new(p.with_cancel_flag(flag))),
            Self::Layered(p) => Self::Layered(Box::new(p.with_cancel_flag(flag))),
        }
    }

    /// The VAE's spatial compression (8 for Qwen-Image).
    pub fn vae_scale_factor(&self) -> usize {
        match self {
            Self::TextToImage(p) => p.vae_scale_factor(),
            Self::Edit(p) => p.vae_scale_factor(),
            Self::Layered(p) => p.vae_scale_factor(),
        }
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
