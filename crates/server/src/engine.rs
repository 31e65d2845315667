//! What the server runs requests on: an [`Engine`] owns the device and the pipeline, and lives on
//! the one worker thread that created it. [`PipelineEngine`] is the real one, over any burn
//! backend (the caller picks it: xtask's `serve` command); tests give fake engines.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::backend::Backend;
use image::{RgbImage, RgbaImage};
use pipeline::{Event, Pipeline, PipelineKind, Request, StageTimings};

/// One generation's result, free of the backend.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The picture (Layered: the first layer without alpha).
    pub image: RgbImage,
    /// Layered: the RGBA layers, which are the answer's images (empty otherwise).
    pub layers: Vec<RgbaImage>,
    /// Layered: the caption that replaced an empty prompt.
    pub caption: Option<String>,
    pub timings: StageTimings,
    pub warnings: Vec<String>,
}

/// Runs generations, one at a time, on the thread that created it.
pub trait Engine {
    /// The pipeline kind loaded (decides which requests make sense).
    fn kind(&self) -> PipelineKind;

    /// Run `req`. Once `cancel` is set the engine stops within one denoising step with
    /// [`pipeline::Error::Cancelled`].
    fn generate(
        &mut self,
        req: &Request,
        cancel: &AtomicBool,
    ) -> Result<Generated, pipeline::Error>;
}

/// A [`Pipeline`] on a burn backend.
#[derive(Debug)]
pub struct PipelineEngine<B: Backend> {
    pipe: Pipeline<B>,
}

impl<B: Backend> PipelineEngine<B> {
    /// Wrap a loaded pipeline.
    pub fn new(pipe: Pipeline<B>) -> Self {
        Self { pipe }
    }

    /// Load a folder or an HF repo id ([`Pipeline::load_revision`]).
    pub fn load(
        model: &str,
        revision: Option<&str>,
        device: &B::Device,
    ) -> Result<Self, pipeline::Error> {
        Ok(Self::new(Pipeline::load_revision(model, revision, device)?))
    }
}

impl<B: Backend> Engine for PipelineEngine<B> {
    fn kind(&self) -> PipelineKind {
        self.pipe.kind()
    }

    fn generate(
        &mut self,
        req: &Request,
        cancel: &AtomicBool,
    ) -> Result<Generated, pipeline::Error> {
        // The pipeline checks its own flag before each step; the request's flag reaches it
        // through the progress events (after the text encoding, then after every step).
        let flag = self.pipe.cancel_flag();
        flag.store(cancel.load(Ordering::SeqCst), Ordering::SeqCst);
        let out = self.pipe.generate(req, &mut |_: Event| {
            if cancel.load(Ordering::SeqCst) {
                flag.store(true, Ordering::SeqCst);
            }
        });
        flag.store(false, Ordering::SeqCst);
        let out = out?;
        Ok(Generated {
            image: out.image,
            layers: out.layers,
            caption: out.caption.map(|c| c.text),
            timings: out.timings,
            warnings: out.warnings,
        })
    }
}
