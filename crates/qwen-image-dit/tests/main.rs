//! All integration tests of `qwen-image-dit` in one test binary: one link and one build of the
//! generic burn code they share instead of one per file, and the tests of every file share
//! the test threads (`cargo test -p qwen-image-dit --test integration [FILTER]`; a file's tests are
//! `FILE::name`). Each module is one former `tests/FILE.rs`, unchanged.

mod bf16;
mod fuzz;
mod hostile_inputs;
mod loading;
mod parity;
mod variants_parity;
