#include "aim/data/idx_source.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "aim/data/image_folder_source.h"
#include "aim/error.h"
#include "byte_order.h"

namespace fs = std::filesystem;

namespace aim::data {

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<uint8_t> raw;
  std::string why;
  if (!read_file(path, raw, &why)) throw Error("cannot read '" + path + "': " + why);
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;
  std::vector<uint8_t> out;
  z_stream z{};
  if (inflateInit2(&z, 15 + 32) != Z_OK) throw Error("zlib init failed");
  z.next_in = raw.data();
  z.avail_in = static_cast<uInt>(raw.size());
  int rc = Z_OK;
  std::vector<uint8_t> chunk(1 << 20);
  while (rc != Z_STREAM_END) {
    z.next_out = chunk.data();
    z.avail_out = static_cast<uInt>(chunk.size());
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      throw Error("'" + path + "' is a damaged gzip file");
    }
    out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - z.avail_out));
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      throw Error("'" + path + "' is a truncated gzip file");
    }
  }
  inflateEnd(&z);
  return out;
}

namespace {

std::string find_existing(const std::string& base) {
  for (const char* ext : {"", ".gz"})
    if (fs::exists(base + ext)) return base + ext;
  return "";
}

}  // namespace

IdxSource::IdxSource(const std::string& path, const std::string& split) {
  std::string labels_path;
  if (fs::is_directory(path)) {
    std::string s = split == "test" ? "t10k" : split;
    images_path_ = find_existing((fs::path(path) / (s + "-images-idx3-ubyte")).string());
    labels_path = find_existing((fs::path(path) / (s + "-labels-idx1-ubyte")).string());
    if (images_path_.empty())
      throw Error("idx: no " + s + "-images-idx3-ubyte[.gz] in '" + path +
                  "' (install dataset-fashion-mnist, or set path to an images file)");
  } else {
    if (!fs::exists(path)) throw Error("idx: '" + path + "' does not exist");
    images_path_ = path;
    auto pos = path.find("images-idx3");
    if (pos != std::string::npos) {
      std::string base = path.substr(0, pos) + "labels-idx1" + path.substr(pos + 11);
      if (base.size() > 3 && base.compare(base.size() - 3, 3, ".gz") == 0) base.resize(base.size() - 3);
      labels_path = find_existing(base);
    }
  }
  pixels_ = read_maybe_gzip(images_path_);
  if (pixels_.size() < 16 || be32(pixels_.data()) != 0x00000803)
    throw Error("idx: '" + images_path_ + "' is not an idx3-ubyte image file");
  count_ = be32(pixels_.data() + 4);
  rows_ = static_cast<int>(be32(pixels_.data() + 8));
  cols_ = static_cast<int>(be32(pixels_.data() + 12));
  if (pixels_.size() < 16 + static_cast<size_t>(count_) * rows_ * cols_)
    throw Error("idx: '" + images_path_ + "' is truncated");
  pixels_.erase(pixels_.begin(), pixels_.begin() + 16);
  labels_.assign(count_, -1);
  if (!labels_path.empty()) {
    auto l = read_maybe_gzip(labels_path);
    if (l.size() < 8 || be32(l.data()) != 0x00000801 || be32(l.data() + 4) != count_ ||
        l.size() < 8 + static_cast<size_t>(count_))
      throw Error("idx: '" + labels_path + "' is not a matching idx1-ubyte label file");
    for (int64_t i = 0; i < count_; ++i) labels_[i] = l[8 + i];
    classes_ = *std::max_element(labels_.begin(), labels_.end()) + 1;
  }
  if (count_ == 0) throw Error("idx: '" + images_path_ + "' holds no images");
}

bool IdxSource::load(int64_t i, RawSample& out, std::string*) const {
  out.bytes.clear();
  // Points into the in-memory array: no copy; transforms never write into their input.
  out.pixels = cv::Mat(rows_, cols_, CV_8U,
                       const_cast<uint8_t*>(pixels_.data()) + static_cast<size_t>(i) * rows_ * cols_);
  out.label = labels_[i];
  out.where = images_path_ + "#" + std::to_string(i);
  return true;
}

}  // namespace aim::data
