#pragma once
// What every source hands the loader: encoded bytes (decoded later, in a worker, with the
// crop known) or ready pixels (IDX, synthetic), plus a label and a location for warnings.
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace aim::data {

struct RawSample {
  std::vector<uint8_t> bytes;  // encoded image; empty when pixels is set
  cv::Mat pixels;              // 8-bit gray or BGR, already decoded
  int64_t label = -1;          // -1 when the source has no labels
  std::string where;           // "shard.tar:key" or a file path, for warnings
};

/// A source whose samples can be read in any order (ImageFolder, IDX, synthetic); the loader
/// picks indices itself, so its batches do not depend on world size.
class RandomAccessSource {
 public:
  virtual ~RandomAccessSource() = default;
  virtual int64_t size() const = 0;
  /// Fills out for sample i (0 <= i < size()). Returns false with *why set when the sample
  /// cannot be read; must be thread-safe.
  virtual bool load(int64_t i, RawSample& out, std::string* why) const = 0;
  virtual int64_t num_classes() const { return 0; }
};

}  // namespace aim::data
