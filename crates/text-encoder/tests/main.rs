//! All integration tests of `text-encoder` in one test binary: one link and one build of the
//! generic burn code they share instead of one per file, and the tests of every file share
//! the test threads (`cargo test -p text-encoder --test integration [FILTER]`; a file's tests are
//! `FILE::name`). Each module is one former `tests/FILE.rs`, unchanged.

mod common;

mod bf16;
mod caption_parity;
mod fuzz;
mod hostile_tokens;
mod loading;
mod multimodal_bf16;
mod multimodal_images;
mod multimodal_parity;
mod parity;
mod vision_bf16;
mod vision_parity;
