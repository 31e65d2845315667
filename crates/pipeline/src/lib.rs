//! QwenImagePipeline: prompt -> text embeddings -> flow-match loop with the DiT and CFG -> VAE decode -> image.
