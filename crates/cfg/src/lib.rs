//! True classifier-free guidance with the per-token norm rescale and the scale fallback.
