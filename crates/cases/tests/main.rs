//! All integration tests of `cases` in one test binary: one link and one build of the
//! generic burn code they share instead of one per file, and the tests of every file share
//! the test threads (`cargo test -p cases --test integration [FILTER]`; a file's tests are
//! `FILE::name`). Each module is one former `tests/FILE.rs`, unchanged.

mod common;

mod case_file;
mod e2e;
mod e2e_edit;
mod e2e_layered;
mod fuzz;
