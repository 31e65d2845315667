//! All integration tests of `xtask` in one test binary: one link and one build of the
//! generic burn code they share instead of one per file, and the tests of every file share
//! the test threads (`cargo test -p xtask --test integration [FILTER]`; a file's tests are
//! `FILE::name`). Each module is one former `tests/FILE.rs`, unchanged.

mod common;

mod caption;
mod cli;
mod consistency;
mod consistency_server;
mod drift;
mod encode_prompt_image;
mod fixtures_exit;
mod forward_dit;
mod forward_dit_variants;
mod forward_vae_encode;
mod forward_vision;
mod generate_edit;
mod generate_layered;
mod gt;
mod gt_cache;
mod hf_cache;
mod hostile;
mod hostile_tensors;
mod merge;
mod messages;
mod prefetch;
mod randn;
mod runs;
mod saved_layout;
mod serve;
mod sglang_suite;
mod special_files;
mod tidy;
