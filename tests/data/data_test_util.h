#pragma once
// Builders for the files the data tests need: photos, damaged images, shards, folders.
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "aim/data/synthetic_source.h"
#include "aim/data/tar_reader.h"
#include "test_util.h"

namespace aim::data::testing {

namespace fs = std::filesystem;

/// A temporary directory removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/aim_data_test_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
};

inline std::vector<uint8_t> encode(const cv::Mat& img, const std::string& ext,
                                   std::vector<int> params = {}) {
  std::vector<uint8_t> buf;
  cv::imencode(ext, img, buf, params);
  return buf;
}

/// A natural-looking BGR photo (deterministic in i).
inline cv::Mat photo(int w, int h, int64_t i = 0) {
  return SyntheticSource(1 << 20, 10, h, w, 3, 42).render(i);
}

inline std::vector<uint8_t> jpeg(int w, int h, int64_t i = 0, int quality = 90) {
  return encode(photo(w, h, i), ".jpg", {cv::IMWRITE_JPEG_QUALITY, quality});
}

/// A flat image whose colour encodes id (R = id % 256, G = id / 256): it survives any crop,
/// resize or flip, so tests can tell which sample landed in which batch slot.
inline std::vector<uint8_t> id_png(int id, int size = 12) {
  cv::Mat m(size, size, CV_8UC3, cv::Scalar(7, id / 256, id % 256));
  return encode(m, ".png");
}
inline int id_of(const uint8_t* chw, int plane) { return chw[0] + 256 * chw[plane]; }

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
}
inline void write_text(const std::string& path, const std::string& s) {
  write_bytes(path, std::vector<uint8_t>(s.begin(), s.end()));
}

/// JPEG whose SOF says w x h (a decompression-bomb header on a tiny body).
inline std::vector<uint8_t> jpeg_with_dims(int w, int h) {
  auto b = jpeg(16, 16);
  for (size_t i = 2; i + 9 < b.size(); ++i)
    if (b[i] == 0xFF && (b[i + 1] == 0xC0 || b[i + 1] == 0xC2)) {
      b[i + 5] = h >> 8;
      b[i + 6] = h & 255;
      b[i + 7] = w >> 8;
      b[i + 8] = w & 255;
      break;
    }
  return b;
}

/// PNG whose IHDR says w x h (CRC left stale: we must refuse it before libpng looks).
inline std::vector<uint8_t> png_with_dims(uint32_t w, uint32_t h) {
  auto b = encode(cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3)), ".png");
  for (int k = 0; k < 4; ++k) {
    b[16 + k] = (w >> (24 - 8 * k)) & 255;
    b[20 + k] = (h >> (24 - 8 * k)) & 255;
  }
  return b;
}

/// Writes an IDX image/label pair: n images of rows x cols, pixel = (i * 7 + y + x) & 255,
/// label = i % classes.
inline void write_idx(const std::string& images, const std::string& labels, int n, int rows,
                      int cols, int classes) {
  auto be = [](std::vector<uint8_t>& v, uint32_t x) {
    for (int k = 3; k >= 0; --k) v.push_back((x >> (8 * k)) & 255);
  };
  std::vector<uint8_t> im, lb;
  be(im, 0x803);
  be(im, n);
  be(im, rows);
  be(im, cols);
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x) im.push_back((i * 7 + y + x) & 255);
  be(lb, 0x801);
  be(lb, n);
  for (int i = 0; i < n; ++i) lb.push_back(i % classes);
  write_bytes(images, im);
  write_bytes(labels, lb);
}

/// A ustar header block for `name` whose 12-byte size field is `size_field` verbatim (octal
/// text, or GNU base-256 with the top bit set), with a valid checksum: hostile sizes that a
/// real tar writer would never produce.
inline std::vector<uint8_t> tar_header(const std::string& name, const std::array<uint8_t, 12>& size_field,
                                       char type = '0') {
  std::vector<uint8_t> h(512, 0);
  std::memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  std::memcpy(h.data() + 100, "0000644", 8);
  std::memcpy(h.data() + 108, "0000000", 8);
  std::memcpy(h.data() + 116, "0000000", 8);
  std::memcpy(h.data() + 124, size_field.data(), 12);
  std::memcpy(h.data() + 136, "00000000000", 12);
  h[156] = static_cast<uint8_t>(type);
  std::memcpy(h.data() + 257, "ustar\0" "00", 8);
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (uint8_t b : h) sum += b;
  std::snprintf(reinterpret_cast<char*>(h.data() + 148), 8, "%06o", sum);
  h[155] = ' ';
  return h;
}
/// The octal size field tar writes for n.
inline std::array<uint8_t, 12> octal_size(uint64_t n) {
  std::array<uint8_t, 12> f{};
  std::snprintf(reinterpret_cast<char*>(f.data()), 12, "%011llo", static_cast<unsigned long long>(n));
  return f;
}
/// A base-256 size field: 0x80, then the 11 given big-endian bytes (88 bits).
inline std::array<uint8_t, 12> base256_size(const std::array<uint8_t, 11>& be) {
  std::array<uint8_t, 12> f{};
  f[0] = 0x80;
  std::memcpy(f.data() + 1, be.data(), 11);
  return f;
}
inline void append_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary | std::ios::app).write(reinterpret_cast<const char*>(b.data()), b.size());
}

}  // namespace aim::data::testing
