//! SSIM, PSNR, mean absolute difference and CLIP image similarity, plus upstream's threshold files.
