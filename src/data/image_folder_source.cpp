#include "aim/data/image_folder_source.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "aim/error.h"

namespace fs = std::filesystem;

namespace aim::data {

bool is_image_extension(const std::string& ext_in) {
  std::string ext = ext_in;
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!ext.empty() && ext[0] == '.') ext.erase(0, 1);
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "webp" || ext == "bmp" ||
         ext == "tif" || ext == "tiff";
}

bool read_file(const std::string& path, std::vector<uint8_t>& out, std::string* why, uint64_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rbe");  // close-on-exec: no shard command inherits it
  if (!f) {
    if (why) *why = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  std::fseek(f, 0, SEEK_END);
  long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  if (n > 0 && static_cast<uint64_t>(n) > max_bytes) {
    std::fclose(f);
    char mb[96];
    std::snprintf(mb, sizeof mb, "file too large (%.1f MB, the cap is %.1f MB: data.max_member_mb)", n / 1048576.0,
                  max_bytes / 1048576.0);
    if (why) *why = mb;
    out.clear();
    return false;
  }
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  bool ok = n >= 0 && std::fread(out.data(), 1, out.size(), f) == out.size();
  std::fclose(f);
  if (!ok && why) *why = "read error";
  return ok;
}

ImageListing list_image_files(const std::string& dir) {
  ImageListing out;
  std::error_code ec;
  auto opts = fs::directory_options::follow_directory_symlink | fs::directory_options::skip_permission_denied;
  for (const auto& e : fs::recursive_directory_iterator(dir, opts, ec)) {
    if (!e.is_regular_file()) continue;
    if (is_image_extension(e.path().extension().string())) {
      out.images.push_back(e.path().string());
    } else {
      ++out.skipped;
      out.skipped_names.push_back(e.path().string());
    }
  }
  std::sort(out.images.begin(), out.images.end());  // directory order is filesystem-dependent
  std::sort(out.skipped_names.begin(), out.skipped_names.end());
  if (out.skipped_names.size() > 3) out.skipped_names.resize(3);
  return out;
}

std::string skipped_note(const ImageListing& l) {
  if (l.skipped == 0) return "";
  std::string names;
  for (const auto& n : l.skipped_names) names += (names.empty() ? "" : ", ") + n;
  const bool one = l.skipped == 1;
  return std::to_string(l.skipped) + (one ? " file that is not an image by its" : " files that are not images by their") +
         " extension (jpg, jpeg, png, webp, bmp, tif, tiff) " + (one ? "was" : "were") + " skipped (" +
         (l.skipped > 3 ? "e.g. " : "") + names + ")";
}

ImageFolderSource::ImageFolderSource(const std::string& root, uint64_t max_bytes) : max_bytes_(max_bytes) {
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw Error("image_folder root '" + root + "' is not a directory");
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory()) classes_.push_back(e.path().filename().string());
  std::sort(classes_.begin(), classes_.end());
  for (size_t c = 0; c < classes_.size(); ++c) {
    ImageListing listing = list_image_files((fs::path(root) / classes_[c]).string());
    for (auto& f : listing.images) {
      files_.push_back(std::move(f));
      labels_.push_back(static_cast<int64_t>(c));
    }
    skipped_.skipped += listing.skipped;
    for (auto& n : listing.skipped_names)
      if (skipped_.skipped_names.size() < 3) skipped_.skipped_names.push_back(std::move(n));
  }
  if (files_.empty())
    throw Error("image_folder root '" + root + "' holds no images (expected root/<class>/*.jpg|png|...)");
}

bool ImageFolderSource::load(int64_t i, RawSample& out, std::string* why) const {
  out.pixels.release();
  out.label = labels_[i];
  out.where = files_[i];
  return read_file(files_[i], out.bytes, why, max_bytes_);
}

}  // namespace aim::data
