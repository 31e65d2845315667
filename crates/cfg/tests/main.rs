//! All integration tests of `cfg` in one test binary: one link and one build of the
//! generic code they share instead of one per file, and the tests of every file share
//! the test threads (`cargo test -p cfg --test integration [FILTER]`; a file's tests are
//! `FILE::name`). Each module is one former `tests/FILE.rs`, unchanged.

mod behaviour;
mod parity;
