//! torch's antialiased bicubic on uint8 ([`image_io::resize_bicubic_antialias`]) against torch
//! itself: `testdata/vision/resize.safetensors` (`resize.{case}.input` / `.output`, written by
//! xtask/reference/gen_vision.py with `torch.nn.functional.interpolate(.., antialias=True)`).

use image::RgbImage;
use image_io::resize_bicubic_antialias;
use parity_support::{Goldens, max_abs_diff_u8};

#[test]
fn torch_antialiased_bicubic_on_uint8_is_bit_exact() {
    let st = Goldens::testdata("vision/resize.safetensors");
    for case in ["down3", "up", "width_only"] {
        let (input, (w, h)) = st.u8_image_hwc(&format!("resize.{case}.input"));
        let input = RgbImage::from_raw(w, h, input).expect("an RGB golden");
        let (want, want_size) = st.u8_image_hwc(&format!("resize.{case}.output"));
        let ours = resize_bicubic_antialias(&input, want_size.0, want_size.1);
        assert_eq!(ours.dimensions(), want_size);
        let diff = max_abs_diff_u8(ours.as_raw(), &want);
        eprintln!(
            "resize {case}: {:?} -> {:?}, max |diff| {diff}",
            input.dimensions(),
            want_size
        );
        assert_eq!(diff, 0, "resize {case}");
    }
}
