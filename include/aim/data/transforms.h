#pragma once
// The AIM augmentations (spec §6) as crop boxes plus pixel ops on 8-bit images. A crop is
// chosen in the coordinates of the *original* image before decoding, so the decoder can pick
// a DCT reduction for it; the result is the same crop whatever reduction was used.
#include <opencv2/core.hpp>

#include "aim/data/rng.h"

namespace aim::data {

struct CropBox {
  double x = 0, y = 0, w = 0, h = 0;  // in the original image's pixel coordinates
};

struct AugmentConfig {
  double scale_min = 0.4, scale_max = 1.0;        // RandomResizedCrop area fraction
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double hflip = 0.5;                              // probability
  double color_jitter = 0.0;                       // probability of applying ColorJitter
  double brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1;
  double eval_crop_pct = 0.875;                    // eval: resize shorter side to size/pct (256 for 224)
  bool eval_view = false;  // train order (shuffled, endless) with the evaluation crop, no flip/jitter
};

/// torchvision's RandomResizedCrop.get_params: 10 tries of (area, log-ratio), then the
/// ratio-clamped center crop.
CropBox random_resized_crop(int width, int height, const AugmentConfig& a, Rng& rng);

/// Evaluation: resize the shorter side to out/crop_pct, center-crop out; expressed as the
/// equivalent box in the original image.
CropBox center_crop(int width, int height, int out, double crop_pct);

/// Crops box (given for an image of orig_w x orig_h) out of img — which may be that image
/// decoded at reduced size — and resizes it to out x out (bicubic; area filter when shrinking
/// by 2x or more, where bicubic would alias).
cv::Mat crop_resize(const cv::Mat& img, const CropBox& box, int orig_w, int orig_h, int out);

/// torchvision ColorJitter(brightness, contrast, saturation, hue) with the four ops in a random
/// order; 1-channel images get brightness and contrast only. img is 8-bit BGR or gray.
void color_jitter(cv::Mat& img, const AugmentConfig& a, Rng& rng);

/// Copies an 8-bit HWC image (BGR or gray) into planar CHW memory in RGB order.
void to_chw_rgb(const cv::Mat& img, uint8_t* dst);

}  // namespace aim::data
