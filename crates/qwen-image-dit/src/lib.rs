//! QwenImageTransformer2DModel: the MMDiT with MSRoPE and the masked joint attention.
