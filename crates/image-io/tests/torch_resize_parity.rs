//! torch's antialiased bicubic on uint8 ([`image_io::resize_bicubic_antialias`]) against torch
//! itself: `testdata/vision/resize.safetensors` (`resize.{case}.input` / `.output`, written by
//! xtask/reference/gen_vision.py with `torch.nn.functional.interpolate(.., antialias=True)`).

use std::path::Path;

use image::RgbImage;
use image_io::resize_bicubic_antialias;
use safetensors::{Dtype, SafeTensors};

fn testdata(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

/// A `[3, h, w]` u8 golden (channel-first, as torch holds it) as an RGB image.
fn u8_image(st: &SafeTensors<'_>, name: &str) -> RgbImage {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    let [c, h, w] = t.shape() else {
        panic!("{name}: shape {:?}", t.shape())
    };
    assert_eq!(*c, 3);
    let chw = t.data();
    let mut hwc = vec![0u8; h * w * 3];
    for ch in 0..3 {
        for i in 0..h * w {
            hwc[i * 3 + ch] = chw[ch * h * w + i];
        }
    }
    RgbImage::from_raw(*w as u32, *h as u32, hwc).expect("buffer size")
}

fn max_abs_diff_u8(a: &RgbImage, b: &RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[test]
fn torch_antialiased_bicubic_on_uint8_is_bit_exact() {
    let bytes = std::fs::read(testdata("vision/resize.safetensors")).expect("resize goldens");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    for case in ["down3", "up", "width_only"] {
        let input = u8_image(&st, &format!("resize.{case}.input"));
        let want = u8_image(&st, &format!("resize.{case}.output"));
        let ours = resize_bicubic_antialias(&input, want.width(), want.height());
        let diff = max_abs_diff_u8(&ours, &want);
        eprintln!(
            "resize {case}: {:?} -> {:?}, max |diff| {diff}",
            input.dimensions(),
            want.dimensions()
        );
        assert_eq!(diff, 0, "resize {case}");
    }
}
