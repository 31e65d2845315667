//! `cargo xtask randn` as porters call it: the file contract (tensor `sample`, shape, dtype,
//! metadata), the values of both generators, and exit code 2 with no file left on bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use safetensors::{Dtype, SafeTensors};
use torch_rng::{CudaGenerator, CudaPlatform, Generator, bf16, f16};

use crate::common::xtask;

/// Runs `randn` with `args` writing to `out`, returning the process output.
fn randn(args: &[&str], out: &Path) -> Output {
    xtask()
        .arg("randn")
        .args(args)
        .arg("--output")
        .arg(out)
        .output()
        .expect("run xtask")
}

fn ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The `sample` tensor's dtype, shape and raw bytes, plus the file's metadata (sorted pairs).
type Sample = (Dtype, Vec<usize>, Vec<u8>, Vec<(String, String)>);

fn read_sample(path: &Path) -> Sample {
    let bytes = std::fs::read(path).expect("output written");
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
    let mut pairs: Vec<(String, String)> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    pairs.sort();
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    assert_eq!(st.names(), ["sample"], "only the `sample` tensor");
    let t = st.tensor("sample").expect("sample");
    (t.dtype(), t.shape().to_vec(), t.data().to_vec(), pairs)
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn help_lists_randn() {
    let o = xtask().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("randn"));
}

#[test]
fn cpu_f32_is_torchs_cpu_noise() {
    let dir = temp();
    let out = dir.path().join("cpu.safetensors");
    ok(&randn(
        &["--generator", "cpu", "--seed", "0", "--shape", "3"],
        &out,
    ));
    let (dtype, shape, data, meta) = read_sample(&out);
    assert_eq!((dtype, shape), (Dtype::F32, vec![3]));
    // torch.randn(3, generator=torch.Generator().manual_seed(0)).
    let want: Vec<u8> = [1.5409961f32, -0.2934289, -2.1787894]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(data, want);
    assert_eq!(
        meta,
        [
            ("generator".to_owned(), "cpu".to_owned()),
            ("seed".to_owned(), "0".to_owned())
        ]
    );
    assert!(!dir.path().join("cpu.safetensors.tmp").exists());
}

#[test]
fn cpu_bf16_latent_shape_is_one_draw_in_bf16() {
    let dir = temp();
    let out = dir.path().join("latent.safetensors");
    ok(&randn(
        &[
            "--generator",
            "cpu",
            "--seed",
            "42",
            "--shape",
            "1,16,1,8,8",
            "--dtype",
            "bf16",
        ],
        &out,
    ));
    let (dtype, shape, data, _) = read_sample(&out);
    assert_eq!((dtype, shape), (Dtype::BF16, vec![1, 16, 1, 8, 8]));
    let want: Vec<u8> = Generator::new(42)
        .randn_bf16(1024)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(data, want);
}

#[test]
fn cuda_defaults_to_the_h100_layout_and_matches_published_values() {
    let dir = temp();
    let out = dir.path().join("cuda.safetensors");
    ok(&randn(
        &["--generator", "cuda", "--seed", "0", "--shape", "12"],
        &out,
    ));
    let (dtype, shape, data, meta) = read_sample(&out);
    assert_eq!((dtype, shape), (Dtype::F32, vec![12]));
    assert!(meta.contains(&("generator".to_owned(), "cuda:h100".to_owned())));
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // torch's GPU printout for torch.randn(4, device="cuda") after manual_seed(0).
    for (v, p) in values.iter().zip([-0.9247f32, -0.4253, -2.6438, 0.1452]) {
        assert!((v - p).abs() <= 5e-5, "{values:?}");
    }
    assert_eq!(
        values,
        CudaGenerator::new(0, CudaPlatform::H100).randn_f32(12)
    );
}

#[test]
fn cuda_platform_decides_a_latent_past_one_grid() {
    let dir = temp();
    let draw = |platform: &str, dtype: &str| {
        let out = dir.path().join(format!("{platform}-{dtype}.safetensors"));
        let args = [
            "--generator",
            "cuda",
            "--seed",
            "7",
            "--shape",
            "1,16,1,128,128",
            "--dtype",
            dtype,
            "--platform",
            platform,
        ];
        ok(&randn(&args, &out));
        read_sample(&out)
    };
    let (dtype, shape, h100, _) = draw("h100", "bf16");
    assert_eq!((dtype, shape), (Dtype::BF16, vec![1, 16, 1, 128, 128]));
    let want: Vec<u8> = CudaGenerator::new(7, CudaPlatform::H100)
        .randn_bf16(262_144)
        .iter()
        .flat_map(|v: &bf16| v.to_le_bytes())
        .collect();
    assert_eq!(h100, want);
    // B200: grid 1024 as on the H100; the 5090 caps the grid at 1020 blocks.
    assert_eq!(draw("b200", "bf16").2, h100);
    let (_, _, rtx, meta) = draw("5090", "bf16");
    assert_ne!(rtx, h100);
    assert_eq!(rtx[..2 * 261_120], h100[..2 * 261_120]);
    assert!(meta.contains(&("generator".to_owned(), "cuda:5090".to_owned())));
    // f16 is the CUDA generator's f32 rounded.
    let (dtype, _, half, _) = draw("h100", "f16");
    assert_eq!(dtype, Dtype::F16);
    let want: Vec<u8> = CudaGenerator::new(7, CudaPlatform::H100)
        .randn_f16(262_144)
        .iter()
        .flat_map(|v: &f16| v.to_le_bytes())
        .collect();
    assert_eq!(half, want);
}

#[test]
fn calls_stack_successive_draws_of_one_generator() {
    // ci/gpu_bench.py compares this with torch.stack of two torch.randn calls on one CUDA
    // generator: the second call must start where the first moved the philox offset.
    let dir = temp();
    let out = dir.path().join("calls.safetensors");
    let args = [
        "--generator",
        "cuda",
        "--seed",
        "3",
        "--shape",
        "2,5",
        "--calls",
        "2",
    ];
    ok(&randn(&args, &out));
    let (dtype, shape, data, _) = read_sample(&out);
    assert_eq!((dtype, shape), (Dtype::F32, vec![2, 2, 5]));
    let mut g = CudaGenerator::new(3, CudaPlatform::H100);
    let want: Vec<u8> = [g.randn_f32(10), g.randn_f32(10)]
        .concat()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(data, want);
    assert_ne!(data[..40], data[40..], "the second call is new noise");
    // The CPU generator continues its stream the same way.
    ok(&randn(
        &[
            "--generator",
            "cpu",
            "--seed",
            "3",
            "--shape",
            "7",
            "--calls",
            "3",
        ],
        &out,
    ));
    let (_, shape, data, _) = read_sample(&out);
    assert_eq!(shape, vec![3, 7]);
    let mut g = Generator::new(3);
    let want: Vec<u8> = (0..3)
        .flat_map(|_| g.randn_f32(7))
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(data, want);
}

#[test]
fn platform_takes_a_cards_sm_count_and_threads() {
    // An H100 PCIe (114 SMs): its grid caps at 912 blocks, so a 1024² latent wraps earlier than
    // on the SXM preset.
    let dir = temp();
    let out = dir.path().join("pcie.safetensors");
    let args = [
        "--generator",
        "cuda",
        "--seed",
        "7",
        "--shape",
        "262144",
        "--platform",
        "114x2048",
    ];
    ok(&randn(&args, &out));
    let (_, _, data, meta) = read_sample(&out);
    let pcie = CudaPlatform::new(114, 2048).expect("valid");
    let want: Vec<u8> = CudaGenerator::new(7, pcie)
        .randn_f32(262_144)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(data, want);
    let sxm: Vec<u8> = CudaGenerator::new(7, CudaPlatform::H100)
        .randn_f32(262_144)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_ne!(data, sxm);
    let label = (
        "generator".to_owned(),
        "cuda(114 SMs x 2048 threads)".to_owned(),
    );
    assert!(meta.contains(&label), "{meta:?}");
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = temp();
    let out = dir.path().join("never.safetensors");
    let cases: [&[&str]; 9] = [
        &[
            "--generator",
            "cuda",
            "--seed",
            "0",
            "--shape",
            "4",
            "--calls",
            "0",
        ],
        &[
            "--generator",
            "cuda",
            "--seed",
            "0",
            "--shape",
            "4",
            "--platform",
            "0x2048",
        ],
        &["--generator", "gpu", "--seed", "0", "--shape", "4"],
        &[
            "--generator",
            "cuda",
            "--seed",
            "0",
            "--shape",
            "4",
            "--platform",
            "a100",
        ],
        &[
            "--generator",
            "cpu",
            "--seed",
            "0",
            "--shape",
            "4",
            "--dtype",
            "f16",
        ],
        &[
            "--generator",
            "cpu",
            "--seed",
            "0",
            "--shape",
            "4",
            "--platform",
            "h100",
        ],
        &["--generator", "cpu", "--seed", "0", "--shape", "1,x"],
        &["--generator", "cpu", "--seed", "-1", "--shape", "4"],
        &[
            "--generator",
            "cuda",
            "--seed",
            "0",
            "--shape",
            "65536,65536,2",
        ],
    ];
    for args in cases {
        let o = randn(args, &out);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            !String::from_utf8_lossy(&o.stderr).trim().is_empty(),
            "{args:?}: no message"
        );
        assert!(!out.exists(), "{args:?} left a file");
    }
    // A missing output folder is named in the error and leaves no temp file.
    let missing: PathBuf = dir.path().join("no/such/dir/x.safetensors");
    let o = randn(
        &["--generator", "cpu", "--seed", "0", "--shape", "4"],
        &missing,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/dir"));
}
