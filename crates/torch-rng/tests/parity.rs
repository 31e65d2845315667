//! Given the noise torch 2.15 (x86-64 Linux) drew for fixed seeds, our generator draws the same
//! bits: every value is compared as raw little-endian bytes, never with a tolerance.
//!
//! Goldens: `testdata/torch-rng/*.safetensors`, written by `xtask/reference/gen_torch_rng.py`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use half::bf16;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use torch_rng::{Element, Generator, randn_tensor};

fn golden(file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/torch-rng")
        .join(file);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (regenerate with the oracle)", path.display()))
}

/// Our values as the bytes safetensors stores (little-endian), plus their safetensors dtype.
trait RawBits: Element {
    const DTYPE: Dtype;
    fn raw(values: &[Self]) -> Vec<u8>;
}
impl RawBits for f32 {
    const DTYPE: Dtype = Dtype::F32;
    fn raw(values: &[Self]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}
impl RawBits for bf16 {
    const DTYPE: Dtype = Dtype::BF16;
    fn raw(values: &[Self]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}
impl RawBits for f64 {
    const DTYPE: Dtype = Dtype::F64;
    fn raw(values: &[Self]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

/// Asserts bit equality of `ours` with golden tensor `name`, naming the first differing element.
fn assert_bits<T: RawBits>(st: &SafeTensors, name: &str, ours: &[T]) {
    let view = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("golden {name}: {e}"));
    assert_eq!(view.dtype(), T::DTYPE, "{name}: golden dtype");
    let (want, got) = (view.data(), T::raw(ours));
    assert_eq!(got.len(), want.len(), "{name}: byte length");
    let width = std::mem::size_of::<T>();
    let bad: Vec<usize> = (0..ours.len())
        .filter(|i| got[i * width..(i + 1) * width] != want[i * width..(i + 1) * width])
        .collect();
    assert!(
        bad.is_empty(),
        "{name}: {} of {} values differ, first at index {}",
        bad.len(),
        ours.len(),
        bad[0]
    );
}

/// Large draws: the sha256 of all raw bytes plus three 256-value windows (head, middle, tail).
fn assert_digest_and_windows<T: RawBits>(st: &SafeTensors, name: &str, ours: &[T]) {
    let n = ours.len();
    let window = st
        .tensor(&format!("{name}.head"))
        .expect("head window")
        .shape()[0];
    assert_bits(st, &format!("{name}.head"), &ours[..window]);
    assert_bits(st, &format!("{name}.mid"), &ours[n / 2..n / 2 + window]);
    assert_bits(st, &format!("{name}.tail"), &ours[n - window..]);
    let digest = st.tensor(&format!("{name}.sha256")).expect("sha256");
    let want: Vec<u8> = digest.data().chunks_exact(8).map(|b| b[0]).collect();
    assert_eq!(
        Sha256::digest(T::raw(ours)).as_slice(),
        want.as_slice(),
        "{name}: sha256 of all {n} values"
    );
}

/// Parses `seed{S}_n{N}_{dtype}` (the goldens' naming).
fn parse_case(name: &str) -> (u64, usize, &str) {
    let mut parts = name.splitn(3, '_');
    let mut field = |prefix: &str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(prefix))
            .expect(name)
    };
    let seed = field("seed").parse().expect(name);
    let n = field("n").parse().expect(name);
    let dtype = parts.next().expect(name);
    (seed, n, dtype)
}

fn check_case(
    st: &SafeTensors,
    name: &str,
    generator: &mut Generator,
    n: usize,
    dtype: &str,
    large: bool,
) {
    match (dtype, large) {
        ("f32", false) => assert_bits(st, name, &generator.randn_f32(n)),
        ("bf16", false) => assert_bits(st, name, &generator.randn_bf16(n)),
        ("f64", false) => assert_bits(st, name, &generator.randn_f64(n)),
        ("f32", true) => assert_digest_and_windows(st, name, &generator.randn_f32(n)),
        ("bf16", true) => assert_digest_and_windows(st, name, &generator.randn_bf16(n)),
        ("f64", true) => assert_digest_and_windows(st, name, &generator.randn_f64(n)),
        _ => panic!("{name}: unknown dtype {dtype}"),
    }
}

#[test]
fn randn_matches_torch_for_every_seed_size_and_dtype() {
    let bytes = golden("randn.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("randn.safetensors");
    let names = st.names();
    // 4 seeds (0, 42, 2^32 + 7, 2^64 - 1) x n in {1, 2, 7, 15, 16, 17, 31, 1000, 4097} x 3 dtypes.
    assert_eq!(names.len(), 4 * 9 * 3);
    for name in names {
        let (seed, n, dtype) = parse_case(name);
        check_case(&st, name, &mut Generator::new(seed), n, dtype, false);
    }
}

#[test]
fn randn_matches_torch_for_a_full_latent_and_one_past_it() {
    let bytes = golden("randn_large.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("randn_large.safetensors");
    let cases: Vec<&str> = st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_suffix(".sha256"))
        .collect();
    // Seeds 0 and 2^32 + 42, n in {262144, 262147}, 3 dtypes.
    assert_eq!(cases.len(), 2 * 2 * 3);
    for name in cases {
        let (seed, n, dtype) = parse_case(name);
        check_case(&st, name, &mut Generator::new(seed), n, dtype, true);
    }
}

#[test]
fn consecutive_calls_continue_the_stream_and_share_the_cached_value() {
    let bytes = golden("sequences.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("sequences.safetensors");
    // `{sequence}_seed{S}.{call}_n{N}_{dtype}`: group the calls of each sequence in call order.
    let mut sequences: BTreeMap<&str, Vec<(usize, usize, &str, &str)>> = BTreeMap::new();
    for name in st.names() {
        let (sequence, call) = name.split_once('.').expect(name);
        if sequence.starts_with("reseed") {
            continue; // checked in `manual_seed_drops_the_cached_value`
        }
        let fields: Vec<&str> = call.splitn(3, '_').collect();
        let [index, n, dtype] = fields[..] else {
            panic!("{name}")
        };
        let n = n
            .strip_prefix('n')
            .and_then(|n| n.parse().ok())
            .expect(name);
        sequences
            .entry(sequence)
            .or_default()
            .push((index.parse().expect(name), n, dtype, name));
    }
    assert_eq!(sequences.len(), 3);
    for (sequence, mut calls) in sequences {
        calls.sort();
        let seed: u64 = sequence
            .rsplit_once("_seed")
            .expect(sequence)
            .1
            .parse()
            .expect(sequence);
        let mut generator = Generator::new(seed);
        for (_, n, dtype, name) in calls {
            check_case(&st, name, &mut generator, n, dtype, false);
        }
    }
}

#[test]
fn manual_seed_drops_the_cached_value() {
    let bytes = golden("sequences.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("sequences.safetensors");
    let mut generator = Generator::new(11);
    generator.randn_f32(1); // leaves r sin(theta) cached
    generator.manual_seed(11);
    assert_bits(
        &st,
        "reseed_seed11.after_manual_seed_n1_f32",
        &generator.randn_f32(1),
    );
}

#[test]
fn randn_tensor_matches_diffusers_for_the_qwen_image_latent() {
    let bytes = golden("randn_tensor.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("randn_tensor.safetensors");
    let shape = [1, 1, 16, 128, 128];
    let bf: Vec<bf16> = randn_tensor(&shape, &mut [Generator::new(42)]).expect("bf16 latent");
    assert_bits(&st, "qwen_latent_seed42_bf16", &bf);
    let f: Vec<f32> = randn_tensor(&shape, &mut [Generator::new(42)]).expect("f32 latent");
    assert_digest_and_windows(&st, "qwen_latent_seed42_f32", &f);
    // n % 16 == 0: the bf16 draw is the f32 draw rounded (not so for other sizes).
    assert!(bf.iter().zip(&f).all(|(b, &x)| *b == bf16::from_f32(x)));
}

#[test]
fn randn_tensor_draws_one_item_per_generator_from_a_list() {
    let bytes = golden("randn_tensor.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("randn_tensor.safetensors");
    let shape = [2, 1, 16, 8, 8];
    let pair = || [Generator::new(0), Generator::new(1)];
    assert_bits(
        &st,
        "batch2_gens_0_1_f32",
        &randn_tensor::<f32>(&shape, &mut pair()).unwrap(),
    );
    assert_bits(
        &st,
        "batch2_gens_0_1_bf16",
        &randn_tensor::<bf16>(&shape, &mut pair()).unwrap(),
    );
    assert_bits(
        &st,
        "batch2_one_gen_0_f32",
        &randn_tensor::<f32>(&shape, &mut [Generator::new(0)]).unwrap(),
    );
    assert_bits(
        &st,
        "batch2_one_gen_0_bf16",
        &randn_tensor::<bf16>(&shape, &mut [Generator::new(0)]).unwrap(),
    );
    // Five values per item: each generator takes the scalar path.
    let mut three = [Generator::new(3), Generator::new(4), Generator::new(5)];
    assert_bits(
        &st,
        "batch3_gens_3_4_5_shape3x5_f32",
        &randn_tensor::<f32>(&[3, 5], &mut three).unwrap(),
    );
}

#[test]
fn seeds_share_a_stream_modulo_two_to_the_32() {
    let a = Generator::new(7).randn_f32(40);
    let b = Generator::new((1 << 32) + 7).randn_f32(40);
    assert_eq!(a, b);
    assert_eq!(Generator::new((1 << 32) + 7).initial_seed(), (1 << 32) + 7);
}

#[test]
fn randn_tensor_rejects_what_diffusers_cannot_draw() {
    use torch_rng::Error;
    let none: Result<Vec<f32>, _> = randn_tensor(&[1, 4], &mut [] as &mut [Generator]);
    assert!(matches!(none, Err(Error::NoGenerator { .. })));
    let scalar: Result<Vec<f32>, _> = randn_tensor(&[], &mut [Generator::new(0)]);
    assert!(matches!(scalar, Err(Error::NoBatchDim { .. })));
    let few: Result<Vec<f32>, _> =
        randn_tensor(&[3, 4], &mut [Generator::new(0), Generator::new(1)]);
    assert!(matches!(
        few,
        Err(Error::TooFewGenerators {
            batch: 3,
            given: 2,
            ..
        })
    ));
    let huge: Result<Vec<f32>, _> = randn_tensor(&[usize::MAX, 2], &mut [Generator::new(0)]);
    assert!(matches!(huge, Err(Error::TooLarge { .. })));
}
