#include "aim/data/decode.h"

#include <algorithm>
#include <cstring>
#include <opencv2/imgcodecs.hpp>

#include "aim/data/jpeg_verify.h"
#include "byte_order.h"

namespace aim::data {
namespace {

// Walks the segments the way libjpeg's reader does (next_marker in jdmarker.c): bytes other
// than 0xFF between segments are passed over (libjpeg warns "extraneous bytes" and decodes
// on), runs of 0xFF fill bytes are swallowed, and FF 00 is not a marker. Stopping at such
// junk instead would skip the pixel cap and the truncation check for a file libjpeg still
// decodes.
void probe_jpeg(const uint8_t* d, size_t n, ImageHeader& h) {
  size_t i = 2;
  for (;;) {
    while (i < n && d[i] != 0xFF) ++i;
    while (i < n && d[i] == 0xFF) ++i;
    if (i >= n) return;
    const size_t marker_at = i - 1;
    const uint8_t m = d[i++];
    if (m == 0x00) continue;                                         // stuffed zero, not a marker
    if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;  // markers without length
    if (m == 0xD9 || i + 2 > n) return;                              // EOI before any scan, or cut
    const size_t len = static_cast<size_t>(be16(d + i));
    if (len < 2) return;
    bool sof = (m >= 0xC0 && m <= 0xCF) && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof && h.width == 0 && i + 7 <= n) {
      h.height = be16(d + i + 3);
      h.width = be16(d + i + 5);
    }
    if (m == 0xDA) {
      h.sos_offset = static_cast<int64_t>(marker_at);
      return;
    }
    i += len;
  }
}

void probe_webp(const uint8_t* d, size_t n, ImageHeader& h) {
  if (n < 30) return;
  if (std::memcmp(d + 12, "VP8X", 4) == 0) {
    h.width = static_cast<int>(le24(d + 24)) + 1;
    h.height = static_cast<int>(le24(d + 27)) + 1;
  } else if (std::memcmp(d + 12, "VP8L", 4) == 0 && d[20] == 0x2F) {
    const uint32_t b = le32(d + 21);
    h.width = static_cast<int>(b & 0x3FFF) + 1;
    h.height = static_cast<int>((b >> 14) & 0x3FFF) + 1;
  } else if (std::memcmp(d + 12, "VP8 ", 4) == 0) {
    h.width = (d[26] | (d[27] << 8)) & 0x3FFF;
    h.height = (d[28] | (d[29] << 8)) & 0x3FFF;
  }
}

// Sizes past 2^30 are clamped so int math stays defined; they are refused as bombs anyway.
int clamp_dim(uint64_t v) { return static_cast<int>(std::min<uint64_t>(v, 1u << 30)); }

// TIFF: ImageWidth (tag 256) and ImageLength (257) of the first IFD, SHORT or LONG, in the
// file's byte order ("II" little, "MM" big endian).
void probe_tiff(const uint8_t* d, size_t n, ImageHeader& h) {
  const bool big = d[0] == 'M';
  auto u16 = [&](uint64_t at) -> uint32_t { return big ? (d[at] << 8) | d[at + 1] : d[at] | (d[at + 1] << 8); };
  auto u32 = [&](uint64_t at) -> uint32_t {
    return big ? be32(d + at) : le32(d + at);
  };
  if (n < 8) return;
  const uint64_t ifd = u32(4);
  if (ifd + 2 > n) return;
  uint64_t width = 0, height = 0;
  const uint32_t entries = u16(ifd);
  for (uint32_t e = 0; e < entries; ++e) {
    const uint64_t at = ifd + 2 + 12ull * e;
    if (at + 12 > n) break;
    const uint32_t tag = u16(at), type = u16(at + 2);
    const uint64_t value = type == 3 ? u16(at + 8) : type == 4 ? u32(at + 8) : 0;
    if (tag == 256) width = value;
    if (tag == 257) height = value;
  }
  if (width > 0 && height > 0) {
    h.width = clamp_dim(width);
    h.height = clamp_dim(height);
  }
}

// BMP: the DIB header after the 14-byte file header: BITMAPCOREHEADER (12 bytes, 16-bit
// sizes) or BITMAPINFOHEADER and later (>= 40 bytes, signed 32-bit; a negative height means
// rows stored top-down).
void probe_bmp(const uint8_t* d, size_t n, ImageHeader& h) {
  if (n < 26) return;
  const uint32_t dib = le32(d + 14);
  int64_t width = 0, height = 0;
  if (dib == 12) {
    width = d[18] | (d[19] << 8);
    height = d[20] | (d[21] << 8);
  } else if (dib >= 40) {
    width = static_cast<int32_t>(le32(d + 18));
    height = static_cast<int32_t>(le32(d + 22));
    if (height < 0) height = -height;
  }
  if (width > 0 && height > 0) {
    h.width = clamp_dim(static_cast<uint64_t>(width));
    h.height = clamp_dim(static_cast<uint64_t>(height));
  }
}

}  // namespace

bool jpeg_has_eoi(const uint8_t* d, size_t n, int64_t sos) {
  if (sos < 0) return false;  // no scan found: nothing to vouch for
  for (size_t i = n - 1; i > static_cast<size_t>(sos) + 1; --i)
    if (d[i] == 0xD9 && d[i - 1] == 0xFF) return true;
  return false;
}

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg: return "jpeg";
    case ImageFormat::kPng: return "png";
    case ImageFormat::kWebp: return "webp";
    case ImageFormat::kGif: return "gif";
    case ImageFormat::kBmp: return "bmp";
    case ImageFormat::kTiff: return "tiff";
    default: return "unknown";
  }
}

ImageHeader probe_image(const uint8_t* d, size_t n) {
  ImageHeader h;
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
    h.format = ImageFormat::kJpeg;
    probe_jpeg(d, n, h);
  } else if (n >= 24 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) {
    h.format = ImageFormat::kPng;
    if (std::memcmp(d + 12, "IHDR", 4) == 0) {
      uint32_t w = be32(d + 16), hh = be32(d + 20);
      h.width = clamp_dim(w);
      h.height = clamp_dim(hh);
    }
  } else if (n >= 16 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
    h.format = ImageFormat::kWebp;
    probe_webp(d, n, h);
  } else if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) {
    h.format = ImageFormat::kGif;
  } else if (n >= 2 && d[0] == 'B' && d[1] == 'M') {
    h.format = ImageFormat::kBmp;
    probe_bmp(d, n, h);
  } else if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) {
    h.format = ImageFormat::kTiff;
    probe_tiff(d, n, h);
  }
  return h;
}

int pick_reduction(int crop_w, int crop_h, int out_size, double min_ratio) {
  double need = out_size * min_ratio;
  for (int f : {8, 4, 2})
    if (crop_w / static_cast<double>(f) >= need && crop_h / static_cast<double>(f) >= need)
      return f;
  return 1;
}

cv::Mat decode_image(const uint8_t* data, size_t size, const DecodeOptions& o, std::string* why) {
  auto fail = [&](const std::string& reason) {
    if (why) *why = reason;
    return cv::Mat();
  };
  if (size == 0) return fail("empty file");
  ImageHeader h = probe_image(data, size);
  if (h.format == ImageFormat::kUnknown) return fail("not an image (unknown format)");
  if (h.format == ImageFormat::kGif) return fail("gif is not supported");  // OpenCV 4.6 has no GIF
  if (h.width < 0 || h.height < 0) return fail("bad dimensions in header");
  const bool sized = h.width > 0 && h.height > 0;
  if (h.format == ImageFormat::kJpeg && (!sized || h.sos_offset < 0 || o.verify_jpeg_data)) {
    // The probe could not follow this header: never trust it, have libjpeg check the file.
    std::string reason;
    if (!verify_jpeg(data, size, o.max_pixels, &reason)) return fail(reason);
  } else {
    // No size, no decode: the pixel cap cannot be checked without one.
    if (!sized) return fail(std::string("unreadable ") + format_name(h.format) + " header (no image size)");
    if (static_cast<int64_t>(h.width) * h.height > o.max_pixels)
      return fail("too many pixels (" + std::to_string(h.width) + "x" + std::to_string(h.height) + ")");
    if (h.format == ImageFormat::kJpeg && !jpeg_has_eoi(data, size, h.sos_offset))
      return fail("truncated jpeg (no EOI marker)");
  }
  int flags = (o.channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR) |
              cv::IMREAD_IGNORE_ORIENTATION;  // like PIL/torchvision: pixels as stored
  if (h.format == ImageFormat::kJpeg && o.reduce > 1) {
    // IMREAD_REDUCED_* = 16/32/64 (+1 for color): OpenCV hands these to libjpeg-turbo's
    // scale_denom, so the IDCT itself produces fewer pixels.
    int shift = o.reduce >= 8 ? 2 : o.reduce >= 4 ? 1 : 0;
    flags = (16 << shift) | (o.channels == 1 ? 0 : 1) | cv::IMREAD_IGNORE_ORIENTATION;
  }
  cv::Mat img;
  try {
    cv::Mat buf(1, static_cast<int>(size), CV_8U, const_cast<uint8_t*>(data));
    img = cv::imdecode(buf, flags);
  } catch (const cv::Exception& e) {
    return fail(std::string("decoder error: ") + e.what());
  }
  if (img.empty()) return fail(std::string("cannot decode ") + format_name(h.format));
  if (static_cast<int64_t>(img.cols) * img.rows * o.reduce * o.reduce > o.max_pixels * 4)
    return fail("too many pixels after decode");
  if (img.depth() != CV_8U) img.convertTo(img, CV_8U, img.depth() == CV_16U ? 1.0 / 257 : 1.0);
  return img;
}

}  // namespace aim::data
