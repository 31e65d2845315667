//! The consistency runner's parts: the case file, and the report.

pub mod cases;
pub mod report;
