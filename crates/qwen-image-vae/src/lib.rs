//! AutoencoderKLQwenImage decoder for single images, plus latent unpack / de-normalise / u8 post-processing.
