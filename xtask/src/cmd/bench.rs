//! `cargo xtask bench`: performance measurements that need a whole model, and the GPU table.
//!
//! Criterion benches in each crate cover the CPU; these commands exist for the full-size GPU runs
//! driven by `ci/gpu-check.sh` (see docs/gpu.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use qwen_image_dit::{DitConfig, DitInputs, ImageShape, QwenImageTransformer};

use crate::util::{check_run_count, report_timings};
use crate::{backend, with_backend};

#[derive(clap::Subcommand, Debug)]
pub enum Bench {
    /// Print the GPU parity/speed table from a gpu-report.json written by ci/gpu-check.sh.
    Gpu {
        #[arg(default_value = "ci/out/gpu-report.json")]
        report: PathBuf,
    },
    /// Time one CFG step (two DiT forwards) with random weights made in place (no checkpoint).
    DitStep(DitStep),
}

#[derive(clap::Args, Debug)]
pub struct DitStep {
    /// A transformer config.json (e.g. the released one; any layer count).
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long, default_value_t = 1024)]
    pub height: usize,
    #[arg(long, default_value_t = 1024)]
    pub width: usize,
    /// Text tokens of each of the two passes.
    #[arg(long, default_value_t = 100)]
    pub txt_len: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Write `{"median_ms": …, "runs_ms": […]}` here.
    #[arg(long)]
    pub timings: Option<PathBuf>,
}

pub fn run(b: Bench) -> anyhow::Result<ExitCode> {
    match b {
        Bench::Gpu { report } => print_gpu_table(&report),
        Bench::DitStep(a) => {
            let (device, precision) = backend::parse(&a.device, &a.dtype)?;
            with_backend!(device, precision, |B, dev| dit_step::<B>(&a, &dev))
        }
    }
}

fn dit_step<B: Backend>(a: &DitStep, dev: &B::Device) -> anyhow::Result<ExitCode> {
    let (config, shapes) = check_dit_step::<B>(a, dev)?;
    let t = Instant::now();
    let model = QwenImageTransformer::<B>::random(config.clone(), dev)?;
    B::sync(dev).map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
    eprintln!(
        "random {}-layer model made in {:.1}s",
        config.num_layers,
        t.elapsed().as_secs_f64()
    );
    let rope = model.rope(&shapes, a.txt_len, dev)?;
    let normal =
        |dims: [usize; 3]| Tensor::<B, 3>::random(dims, Distribution::Normal(0.0, 1.0), dev);
    let hidden = normal([1, shapes[0].num_tokens(), config.in_channels]);
    let cond = normal([1, a.txt_len, config.joint_attention_dim]);
    let uncond = normal([1, a.txt_len, config.joint_attention_dim]);
    let ts = Tensor::<B, 1>::from_data(TensorData::new(vec![0.5f32], [1]), dev);
    let pass = |text: &Tensor<B, 3>| {
        model.forward(DitInputs::new(
            hidden.clone(),
            text.clone(),
            ts.clone(),
            &rope,
        ))
    };
    let step = || -> anyhow::Result<Tensor<B, 3>> { Ok(pass(&cond)? + pass(&uncond)?) };
    let mut runs = Vec::new();
    for i in 0..a.warmup + a.steps {
        B::sync(dev).map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
        let t = Instant::now();
        let out = step()?;
        let _ = out.into_data(); // reading back forces the work and a sync
        if i >= a.warmup {
            runs.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let median = report_timings(&runs, a.timings.as_deref())?;
    println!(
        "DiT CFG step ({} layers, {}×{}, {} text tokens, {}/{}): median {median:.1} ms over {} steps",
        config.num_layers, a.height, a.width, a.txt_len, a.device, a.dtype, a.steps
    );
    Ok(ExitCode::SUCCESS)
}

/// Every setting of `bench dit-step` checked before any weight is made, each named as its flag
/// or config key: the run counts ([`MAX_RUNS`](crate::util::MAX_RUNS)), the config (`MAX_NUM_LAYERS` blocks at most),
/// its weights against this machine's memory, the size as `generate` bounds it, and the shapes
/// as the model checks them (at least one text token, within the RoPE tables).
fn check_dit_step<B: Backend>(
    a: &DitStep,
    dev: &B::Device,
) -> anyhow::Result<(DitConfig, [ImageShape; 1])> {
    check_run_count("--steps", a.steps, 1)?;
    check_run_count("--warmup", a.warmup, 0)?;
    let config = DitConfig::from_file(&a.config)?;
    check_weights_fit(&config, std::mem::size_of::<B::FloatElem>())
        .with_context(|| a.config.display().to_string())?;
    let names = pipeline::RequestFieldNames {
        height: "--height",
        width: "--width",
        steps: "--steps",
    };
    pipeline::Request::new("", a.height, a.width)
        .check_named(&names)
        .map_err(anyhow::Error::msg)?;
    let shapes = [ImageShape::new(1, a.height / 16, a.width / 16)];
    let rope = qwen_image_dit::Rope::<B>::for_config(&config, &shapes, a.txt_len, dev)
        .context("--txt-len")?;
    let hidden = [1, shapes[0].num_tokens(), config.in_channels];
    let text = [1, a.txt_len, config.joint_attention_dim];
    config
        .check_inputs(hidden, text, None, [1], &rope)
        .context("--txt-len")?;
    Ok((config, shapes))
}

/// The random model's weights (`elem_bytes` each) must fit in this machine's memory
/// (`MemTotal`; not checked where /proc/meminfo is absent): beyond it, making them ends in the
/// allocator, minutes later.
fn check_weights_fit(config: &DitConfig, elem_bytes: usize) -> anyhow::Result<()> {
    let Some(total) = host_memory_bytes() else {
        return Ok(());
    };
    let need = config.num_parameters().saturating_mul(elem_bytes as u64);
    if need > total {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        anyhow::bail!(
            "a random model of {} layers has {} weights: {:.1} GiB, more than this machine's \
             {:.1} GiB of memory (lower `num_layers`)",
            config.num_layers,
            config.num_parameters(),
            gib(need),
            gib(total)
        );
    }
    Ok(())
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn host_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn print_gpu_table(path: &Path) -> anyhow::Result<ExitCode> {
    let text = crate::util::read_regular_text(path, crate::util::MAX_TEXT_BYTES)
        .context("run ci/gpu-check.sh first")?;
    let r: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let rows = r["rows"]
        .as_array()
        .with_context(|| format!("{}: no `rows`", path.display()))?;
    println!(
        "GPU check on {} ({}, torch {})",
        r["card"].as_str().unwrap_or("?"),
        r["date"].as_str().unwrap_or("?"),
        r["torch"].as_str().unwrap_or("?")
    );
    if let (Some(sms), Some(threads)) = (r["sm_count"].as_u64(), r["max_threads_per_sm"].as_u64()) {
        println!("{sms} SMs x {threads} threads per SM");
    }
    println!(
        "{:<7} {:<34} {:<4} {:>9} {:>9} {:>9} {:>9} {:>6}  note",
        "section", "item", "ok", "max rel", "mean rel", "torch ms", "ours ms", "ratio"
    );
    let num = |row: &serde_json::Value, k: &str, prec: usize, sci: bool| match row[k].as_f64() {
        Some(v) if sci => format!("{v:.prec$e}"),
        Some(v) => format!("{v:.prec$}"),
        None => "-".into(),
    };
    let mut all_ok = true;
    for row in rows {
        let ok = row["ok"].as_bool().unwrap_or(false);
        all_ok &= ok;
        // A row that could not be measured on that machine (e.g. torch's CUDA generator in a
        // `--small` CPU run) is marked, not failed.
        let skipped = row["skipped"].as_str().is_some_and(|s| !s.is_empty());
        let note = row["note"].as_str().or(row["error"].as_str()).unwrap_or("");
        println!(
            "{:<7} {:<34} {:<4} {:>9} {:>9} {:>9} {:>9} {:>6}  {}",
            row["section"].as_str().unwrap_or(""),
            row["item"].as_str().unwrap_or(""),
            if skipped {
                "skip"
            } else if ok {
                "ok"
            } else {
                "FAIL"
            },
            num(row, "max_rel", 2, true),
            num(row, "mean_rel", 2, true),
            num(row, "torch_ms", 1, false),
            num(row, "ours_ms", 1, false),
            num(row, "ratio", 2, false),
            note.chars().take(60).collect::<String>(),
        );
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
