//! The consistency runner's parts: case selection, and the report.

pub mod cases;
pub mod report;
