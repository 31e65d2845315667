//! Safetensors loading into burn modules (sharded, mmap, bf16/f16/f32) and diffusers-layout folder / HF repo resolution.
