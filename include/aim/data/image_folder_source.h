#pragma once
// torchvision's ImageFolder layout: root/<class>/**/<file>.{jpg,jpeg,png,webp,bmp,tif,tiff}
// (extension case ignored); class index = position in the sorted list of folder names.
#include <string>
#include <vector>

#include "aim/data/source.h"

namespace aim::data {

class ImageFolderSource : public RandomAccessSource {
 public:
  /// Scans root; throws aim::Error when it is missing or holds no images.
  explicit ImageFolderSource(const std::string& root);
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  bool load(int64_t i, RawSample& out, std::string* why) const override;
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::string& path(int64_t i) const { return files_[i]; }
  int64_t label(int64_t i) const { return labels_[i]; }

 private:
  std::vector<std::string> classes_, files_;
  std::vector<int64_t> labels_;
};

/// True for the file extensions ImageFolder and webdataset samples use for images.
bool is_image_extension(const std::string& ext);

/// Reads a whole file; false with *why on failure.
bool read_file(const std::string& path, std::vector<uint8_t>& out, std::string* why);

}  // namespace aim::data
