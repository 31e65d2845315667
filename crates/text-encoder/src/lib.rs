//! The Qwen2.5-VL language model (text-only path) and the Qwen-Image prompt path: template, drop 34, re-pad, embedding-aligned mask.
