#pragma once
// Raw sample -> final uint8 CHW image for global sample g. Split in two: prepare() decodes
// and picks the crop (the part that can find a sample bad), finish() resizes and augments.
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>

#include "aim/data/decode.h"
#include "aim/data/rng.h"
#include "aim/data/source.h"
#include "aim/data/transforms.h"

namespace aim::data {

struct TransformConfig {
  int img_size = 224;
  int channels = 3;
  bool train = true;                 // RandomResizedCrop + flip + jitter; else resize + center crop
  AugmentConfig augment;
  uint64_t seed = 0;
  int64_t max_pixels = 1ll << 26;    // decompression-bomb cap
  double dct_min_ratio = 1.0;        // JPEG: decode at 1/f only if the crop keeps >= ratio*img_size
};

/// A decoded image with its crop chosen; `rng` continues the sample's random stream.
struct PreparedSample {
  cv::Mat image;        // possibly decoded at reduced size
  int orig_w = 0, orig_h = 0;
  CropBox box;
  Rng rng{0};
  int reduction = 1;
};

class SampleTransform {
 public:
  explicit SampleTransform(TransformConfig c) : c_(std::move(c)) {}
  /// Decodes and picks the crop. False with *why when the sample is bad.
  bool prepare(const RawSample& raw, uint64_t global_index, PreparedSample& p, std::string* why) const;
  /// Crop-resize, flip, jitter, channel conversion; writes channels*img_size^2 bytes (CHW, RGB).
  void finish(PreparedSample& p, uint8_t* dst) const;
  bool apply(const RawSample& raw, uint64_t global_index, uint8_t* dst, std::string* why) const {
    PreparedSample p;
    if (!prepare(raw, global_index, p, why)) return false;
    finish(p, dst);
    return true;
  }
  const TransformConfig& config() const { return c_; }

 private:
  CropBox choose_box(int w, int h, Rng& rng) const;
  TransformConfig c_;
};

}  // namespace aim::data
