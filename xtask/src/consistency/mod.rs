//! The consistency runner's parts: case selection, the report, and `--resolve-only`.

pub mod cases;
pub mod report;
pub mod resolve;
