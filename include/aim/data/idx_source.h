#pragma once
// MNIST-format IDX files (raw or .gz), e.g. Fashion-MNIST from Debian's dataset-fashion-mnist
// in /usr/share/datasets/fashion-mnist: the embedded default data. Held in memory (47 MB).
#include <string>
#include <vector>

#include "aim/data/source.h"

namespace aim::data {

class IdxSource : public RandomAccessSource {
 public:
  /// path: a directory with {split}-images-idx3-ubyte[.gz] and {split}-labels-idx1-ubyte[.gz]
  /// (split "train" or "test"/"t10k"), or an images file whose labels file is found by
  /// replacing "images-idx3" with "labels-idx1" (missing labels -> -1). Throws aim::Error.
  IdxSource(const std::string& path, const std::string& split = "train");
  int64_t size() const override { return count_; }
  bool load(int64_t i, RawSample& out, std::string* why) const override;
  int64_t num_classes() const override { return classes_; }
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  const std::string& images_path() const { return images_path_; }

 private:
  std::vector<uint8_t> pixels_;
  std::vector<int64_t> labels_;
  int64_t count_ = 0, classes_ = 0;
  int rows_ = 0, cols_ = 0;
  std::string images_path_;
};

/// Reads a file, inflating it when it is gzip-compressed. Throws aim::Error.
std::vector<uint8_t> read_maybe_gzip(const std::string& path);

}  // namespace aim::data
