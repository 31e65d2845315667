//! Fuzzing the image decoders (`image_io::decode`: PNG, JPEG through libjpeg-turbo, WebP) on
//! stable Rust with proptest: random edits of the real sample files of every mode (truncations,
//! flipped bytes, duplicated chunks, inserted garbage) and random bytes behind each format's
//! magic number. Whatever the bytes: an image whose buffer matches its size and mode, or an
//! error naming the input, never a panic; a decoded image converts to RGB.

use std::path::{Path, PathBuf};

use fuzz_support::{edits, mutate};
use image_io::Mode;
use proptest::prelude::*;

const CI_CASES: u32 = 1000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/image-io")
}

/// The sample files: PNG in every mode, lossy and lossless WebP, PIL-written JPEGs.
fn samples() -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for dir in ["sources", "jpeg"] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(testdata().join(dir))
            .expect("samples")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "png" || x == "jpg" || x == "webp")
            })
            .collect();
        names.sort();
        files.extend(names.iter().map(|p| std::fs::read(p).expect("sample")));
    }
    files
}

fn exercise(bytes: &[u8]) {
    let Ok(img) = image_io::decode(bytes) else {
        return;
    };
    let (w, h) = img.size();
    let expected = w as usize * h as usize * img.mode().channels() * img.mode().bytes_per_value();
    assert_eq!(img.as_bytes().len(), expected, "{:?} {w}×{h}", img.mode());
    if img.mode() != Mode::I16 {
        let _ = img.convert(Mode::Rgb);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn edited_sample_images_never_panic(which in any::<prop::sample::Index>(), edits in edits()) {
        static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        let samples = SAMPLES.get_or_init(samples);
        let base = &samples[which.index(samples.len())];
        exercise(&mutate(base, &edits));
    }

    #[test]
    fn random_bytes_behind_a_magic_number_never_panic(
        magic in prop::sample::select(vec![
            &b"\x89PNG\r\n\x1a\n"[..],
            &b"\xff\xd8\xff\xe0"[..],
            &b"\xff\xd8\xff\xdb"[..],
            &b"RIFF\x10\x00\x00\x00WEBPVP8 "[..],
            &b"RIFF\x10\x00\x00\x00WEBPVP8L"[..],
            &b""[..],
        ]),
        rest in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend(rest);
        exercise(&bytes);
    }
}

/// A JPEG header claiming 60000 × 60000 pixels is refused before 10 GB are allocated (PIL's
/// decompression-bomb limit), naming what it is.
#[test]
fn a_jpeg_claiming_a_huge_size_is_refused_before_allocating() {
    let mut bytes = std::fs::read(testdata().join("jpeg/pil_grey_q75.jpg")).expect("jpeg");
    // The SOF0 marker: FF C0, length (2), precision (1), height (2), width (2).
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG");
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let e = image_io::decode(&bytes).expect_err("huge").to_string();
    assert!(
        e.contains("60000×60000") && e.contains("decompression-bomb"),
        "{e}"
    );
}
