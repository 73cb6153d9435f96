#pragma once
// torchvision's ImageFolder layout: root/<class>/**/<file>.{jpg,jpeg,png,webp,bmp,tif,tiff}
// (extension case ignored); class index = position in the sorted list of folder names.
#include <cstdint>
#include <string>
#include <vector>

#include "aim/data/source.h"

namespace aim::data {

/// The image files of a folder tree by their extension (is_image_extension), sorted by path,
/// and the other regular files passed over. Training (ImageFolder), `aim-data pack` and
/// `aim-probe --predict` list folders with this, so a notes.txt beside the photos is counted
/// and reported the same way everywhere (skipped_note) instead of an error in one tool and
/// silence in another.
struct ImageListing {
  std::vector<std::string> images;
  int64_t skipped = 0;                   // regular files that are not images by extension
  std::vector<std::string> skipped_names;  // the first few of them
};
/// Lists `dir` recursively (symlinked folders followed, unreadable ones passed over).
ImageListing list_image_files(const std::string& dir);
/// "2 files that are not images by their extension (jpg, ...) were skipped (a/notes.txt,
/// b/x.csv)";
/// empty when none were.
std::string skipped_note(const ImageListing& listing);

class ImageFolderSource : public RandomAccessSource {
 public:
  /// Scans root; throws aim::Error when it is missing or holds no images. A file above
  /// max_bytes (data.max_member_mb) is a bad sample, refused before it is read.
  explicit ImageFolderSource(const std::string& root, uint64_t max_bytes = uint64_t{256} << 20);
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  bool load(int64_t i, RawSample& out, std::string* why) const override;
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::string& path(int64_t i) const { return files_[i]; }
  int64_t label(int64_t i) const { return labels_[i]; }
  /// The non-image files passed over while scanning root (list_image_files).
  const ImageListing& skipped() const { return skipped_; }

 private:
  std::vector<std::string> classes_, files_;
  std::vector<int64_t> labels_;
  uint64_t max_bytes_;
  ImageListing skipped_;  // images left empty: only the count and names of the rest
};

/// True for the file extensions ImageFolder and webdataset samples use for images.
bool is_image_extension(const std::string& ext);

/// Reads a whole file; false with *why on failure, or when it is larger than max_bytes
/// (checked before anything is read).
bool read_file(const std::string& path, std::vector<uint8_t>& out, std::string* why,
               uint64_t max_bytes = UINT64_MAX);

}  // namespace aim::data
