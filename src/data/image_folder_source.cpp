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

bool read_file(const std::string& path, std::vector<uint8_t>& out, std::string* why) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    if (why) *why = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  std::fseek(f, 0, SEEK_END);
  long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  bool ok = n >= 0 && std::fread(out.data(), 1, out.size(), f) == out.size();
  std::fclose(f);
  if (!ok && why) *why = "read error";
  return ok;
}

ImageFolderSource::ImageFolderSource(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw Error("image_folder root '" + root + "' is not a directory");
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory()) classes_.push_back(e.path().filename().string());
  std::sort(classes_.begin(), classes_.end());
  for (size_t c = 0; c < classes_.size(); ++c) {
    std::vector<std::string> files;
    auto opts = fs::directory_options::follow_directory_symlink |
                fs::directory_options::skip_permission_denied;
    for (const auto& e : fs::recursive_directory_iterator(fs::path(root) / classes_[c], opts, ec))
      if (e.is_regular_file() && is_image_extension(e.path().extension().string()))
        files.push_back(e.path().string());
    std::sort(files.begin(), files.end());  // directory order is filesystem-dependent
    for (auto& f : files) {
      files_.push_back(std::move(f));
      labels_.push_back(static_cast<int64_t>(c));
    }
  }
  if (files_.empty())
    throw Error("image_folder root '" + root + "' holds no images (expected root/<class>/*.jpg|png|...)");
}

bool ImageFolderSource::load(int64_t i, RawSample& out, std::string* why) const {
  out.pixels.release();
  out.label = labels_[i];
  out.where = files_[i];
  return read_file(files_[i], out.bytes, why);
}

}  // namespace aim::data
