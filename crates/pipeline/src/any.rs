//! [`Pipeline`]: any Qwen-Image pipeline, loaded as its folder's `_class_name` says — the one way
//! a pipeline is loaded (the concrete types are taken out of it with `try_from`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::backend::Backend;
use weights::PipelineDir;

use crate::edit::QwenImageEditPipeline;
use crate::error::Error;
use crate::kind::PipelineKind;
use crate::layered::QwenImageLayeredPipeline;
use crate::request::{Event, Output, Request};
use crate::stages::Components;
use crate::text_to_image::QwenImagePipeline;

/// Any Qwen-Image pipeline, chosen by the folder's `_class_name`: what the CLI and the
/// consistency runner load when they do not know the model in advance. (Each pipeline is boxed:
/// they differ in size, and a pipeline is moved around whole.)
///
/// The parts every kind shares (kind, device, VAE scale factor, cancel flag) are answered here
/// once; a concrete pipeline, for what only it offers (Edit's output size, Layered's stages), is
/// taken out with `try_from`, which names the folder's class when it is another kind.
///
/// ```no_run
/// use burn::backend::Flex;
/// use pipeline::{InputImage, Pipeline, PipelineKind, QwenImageEditPipeline, Request};
///
/// let pipe = Pipeline::<Flex>::load("testdata/tiny-qwen-image-edit", &Default::default())?;
/// assert_eq!(pipe.kind(), PipelineKind::Edit);
/// let req = Request::edit("Make the sky purple", vec![InputImage::load("in.png")?]).steps(4);
/// let out = pipe.generate(&req, &mut |_| {})?;
/// let edit = QwenImageEditPipeline::try_from(pipe)?;
/// let (height, width, _) = edit.output_size(&req.images, None, None)?;
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

    /// Load from an opened pipeline folder, as its `_class_name` says: the shared parts, then
    /// the VAE half that kind runs. Every component must be present (Edit: `processor/` too).
    pub fn from_dir(dir: &PipelineDir, device: &B::Device) -> Result<Self, Error> {
        let kind = PipelineKind::of(dir)?;
        let c = Components::load(dir, kind, device)?;
        Ok(match kind {
            PipelineKind::TextToImage => {
                Self::TextToImage(Box::new(QwenImagePipeline::from_dir(c, dir)?))
            }
            PipelineKind::Edit | PipelineKind::EditPlus => {
                Self::Edit(Box::new(QwenImageEditPipeline::from_dir(c, dir)?))
            }
            PipelineKind::Layered => {
                Self::Layered(Box::new(QwenImageLayeredPipeline::from_dir(c, dir)?))
            }
        })
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

    /// What was loaded.
    pub fn kind(&self) -> PipelineKind {
        self.components().kind
    }

    /// A flag that, once set (e.g. from a Ctrl-C handler), stops the loop after the current step
    /// with [`Error::Cancelled`].
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.components().cancel.clone()
    }

    /// Share one cancel flag between several pipelines (e.g. a run over many models, with one
    /// Ctrl-C handler).
    pub fn with_cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.components_mut().cancel = flag;
        self
    }

    /// The VAE's spatial compression (8 for Qwen-Image); sizes are floored to twice this.
    pub fn vae_scale_factor(&self) -> usize {
        self.components().vae_scale_factor
    }

    /// The device the pipeline runs on.
    pub fn device(&self) -> &B::Device {
        &self.components().device
    }

    fn components(&self) -> &Components<B> {
        match self {
            Self::TextToImage(p) => &p.c,
            Self::Edit(p) => &p.c,
            Self::Layered(p) => &p.c,
        }
    }

    fn components_mut(&mut self) -> &mut Components<B> {
        match self {
            Self::TextToImage(p) => &mut p.c,
            Self::Edit(p) => &mut p.c,
            Self::Layered(p) => &mut p.c,
        }
    }

    /// The error for a pipeline of this kind taken as `wanted`: the folder's `model_index.json`,
    /// its class and the type asked for.
    fn wrong_kind(&self, wanted: &str) -> Error {
        let c = self.components();
        Error::PipelineClass {
            path: c.root.join("model_index.json"),
            reason: format!(
                "the folder declares {}, which {wanted} does not run (pipeline::Pipeline loads \
                 any kind)",
                c.kind.class_name()
            ),
        }
    }
}

/// `TryFrom<Pipeline>` for each concrete pipeline: its variant, or the wrong-kind error.
macro_rules! concrete {
    ($($variant:ident => $ty:ident),* $(,)?) => {$(
        impl<B: Backend> TryFrom<Pipeline<B>> for $ty<B> {
            type Error = Error;

            /// The pipeline if it is this kind, else an error naming the folder's class.
            fn try_from(p: Pipeline<B>) -> Result<Self, Error> {
                match p {
                    Pipeline::$variant(p) => Ok(*p),
                    other => Err(other.wrong_kind(stringify!($ty))),
                }
            }
        }
    )*};
}
concrete!(
    TextToImage => QwenImagePipeline,
    Edit => QwenImageEditPipeline,
    Layered => QwenImageLayeredPipeline,
);
