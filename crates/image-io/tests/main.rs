//! All integration tests of `image-io` in one test binary: one link and one build of the
//! generic code they share instead of one per file, and the tests of every file share
//! the test threads (`cargo test -p image-io --test integration [FILTER]`; a file's tests are
//! `FILE::name`). Each module is one former `tests/FILE.rs`, unchanged.

mod fuzz;
mod pil_parity;
mod torch_resize_parity;
