//! Compare two images the way upstream's consistency check does, and apply a threshold file.
//!
//! ```text
//! cargo run -p metrics --example compare -- OUT.png GT.png [THRESHOLDS.json CASE_ID]
//! ```

use std::path::Path;
use std::process::ExitCode;

use metrics::{FrameMetrics, ImageMetrics, Media, PixelMetrics, Thresholds, load_rgb};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 && args.len() != 4 {
        eprintln!("usage: compare OUT.png GT.png [THRESHOLDS.json CASE_ID]");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(passed) => ExitCode::from(if passed { 0 } else { 1 }),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<bool, metrics::Error> {
    let out = load_rgb(Path::new(&args[0]))?;
    let gt = load_rgb(Path::new(&args[1]))?;
    let pixel = PixelMetrics::compute(&out, &gt)?;
    // No CLIP model here: the verdict will say CLIP was not checked.
    let frame = FrameMetrics {
        frame: "image".into(),
        metrics: ImageMetrics::new(pixel, None),
    };
    println!(
        "{}",
        serde_json::to_string(&frame.metrics).unwrap_or_default()
    );

    let (thresholds, case) = match args.get(2..4) {
        Some([file, case]) => (Thresholds::load(Path::new(file), None)?, case.as_str()),
        _ => (Thresholds::builtin(), "any_case"),
    };
    let verdict = thresholds.for_case(case, Media::Image).check(&[frame]);
    for f in &verdict.failures {
        println!("FAIL {f}");
    }
    for u in &verdict.unchecked {
        println!("SKIP {u}");
    }
    println!("{:?}", verdict.status());
    Ok(verdict.passed())
}
