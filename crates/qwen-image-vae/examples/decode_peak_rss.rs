//! Peak resident memory of one decode: tiny VAE (base_dim 8), latents 128×128×16 (a 1024² image).
//!
//! Run: `cargo run -p qwen-image-vae --release --example decode_peak_rss [-- SIDE]`
//! Prints the RSS before decoding and the high-water mark after (Linux /proc/self/status), plus the
//! size of the largest activations for comparison, and the time spent in each decoder stage.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use qwen_image_vae::QwenImageVae;

type B = Flex;

/// `VmRSS` and `VmHWM` in MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let side: usize = std::env::args().nth(1).map_or(Ok(128), |s| s.parse())?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image/vae");
    let dev = Default::default();
    let vae = QwenImageVae::<B>::load(&dir, &dev)?;
    let latents =
        Tensor::<B, 5>::random([1, 16, 1, side, side], Distribution::Normal(0.0, 2.0), &dev);
    let (before, _) = rss_mib();
    let start = std::time::Instant::now();
    let mut last = start;
    let sample = vae.decode_inspect(latents, |stage, _| {
        // Flex is eager: a stage's time is spent when its output exists.
        let now = std::time::Instant::now();
        println!("  {stage:<16} {:>8.2?}", now - last);
        last = now;
    })?;
    let [_, c, _, h, w] = sample.dims();
    let data = sample.into_data();
    let elapsed = start.elapsed();
    let (after, peak) = rss_mib();
    let mib = |elems: usize| (elems * 4) as f64 / (1 << 20) as f64;
    let base = vae.config().base_dim;
    println!("latents {side}x{side}x16 -> image {c}x{h}x{w} in {elapsed:.2?}");
    println!("RSS before decode {before:.1} MiB, after {after:.1} MiB, peak {peak:.1} MiB");
    println!("peak above pre-decode RSS: {:.1} MiB", peak - before);
    println!(
        "for scale: output {:.1} MiB; one up_blocks.3 activation ({base} ch at {h}x{w}) {:.1} MiB; \
         the up_blocks.2 upsample ({} ch at {h}x{w}) {:.1} MiB",
        mib(c * h * w),
        mib(base * h * w),
        2 * base,
        mib(2 * base * h * w)
    );
    drop(data);
    Ok(())
}
