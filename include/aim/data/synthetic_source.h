#pragma once
// Deterministic synthetic images for tests and benchmarks: smooth class-dependent patterns
// that are a pure function of (seed, index), so no data has to exist on disk.
#include "aim/data/source.h"

namespace aim::data {

class SyntheticSource : public RandomAccessSource {
 public:
  SyntheticSource(int64_t size, int64_t classes, int height, int width, int channels,
                  uint64_t seed);
  int64_t size() const override { return size_; }
  bool load(int64_t i, RawSample& out, std::string* why) const override;
  int64_t num_classes() const override { return classes_; }
  /// The image itself (8-bit BGR or gray), also used to write benchmark photos.
  cv::Mat render(int64_t i) const;

 private:
  int64_t size_, classes_;
  int height_, width_, channels_;
  uint64_t seed_;
};

}  // namespace aim::data
