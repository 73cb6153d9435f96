#include "aim/data/decode.h"

#include <cstring>
#include <opencv2/imgcodecs.hpp>

namespace aim::data {
namespace {

int be16(const uint8_t* p) { return (p[0] << 8) | p[1]; }
uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint32_t le24(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16); }

void probe_jpeg(const uint8_t* d, size_t n, ImageHeader& h) {
  size_t i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) return;  // lost sync: leave dims unknown, the decoder will judge
    uint8_t m = d[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {  // markers without length
      i += 2;
      continue;
    }
    int len = be16(d + i + 2);
    if (len < 2) return;
    bool sof = (m >= 0xC0 && m <= 0xCF) && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof && h.width == 0 && i + 9 <= n) {
      h.height = be16(d + i + 5);
      h.width = be16(d + i + 7);
    }
    if (m == 0xDA) {
      h.sos_offset = static_cast<int64_t>(i);
      return;
    }
    i += 2 + static_cast<size_t>(len);
  }
}

void probe_webp(const uint8_t* d, size_t n, ImageHeader& h) {
  if (n < 30) return;
  if (std::memcmp(d + 12, "VP8X", 4) == 0) {
    h.width = static_cast<int>(le24(d + 24)) + 1;
    h.height = static_cast<int>(le24(d + 27)) + 1;
  } else if (std::memcmp(d + 12, "VP8L", 4) == 0 && d[20] == 0x2F) {
    uint32_t b = d[21] | (d[22] << 8) | (d[23] << 16) | (uint32_t{d[24]} << 24);
    h.width = static_cast<int>(b & 0x3FFF) + 1;
    h.height = static_cast<int>((b >> 14) & 0x3FFF) + 1;
  } else if (std::memcmp(d + 12, "VP8 ", 4) == 0) {
    h.width = (d[26] | (d[27] << 8)) & 0x3FFF;
    h.height = (d[28] | (d[29] << 8)) & 0x3FFF;
  }
}

}  // namespace

bool jpeg_has_eoi(const uint8_t* d, size_t n, int64_t sos) {
  if (sos < 0) return true;  // header not understood; let the decoder decide
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
      // Clamp absurd values so int math stays defined; they are refused as bombs anyway.
      h.width = static_cast<int>(std::min<uint32_t>(w, 1u << 30));
      h.height = static_cast<int>(std::min<uint32_t>(hh, 1u << 30));
    }
  } else if (n >= 16 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
    h.format = ImageFormat::kWebp;
    probe_webp(d, n, h);
  } else if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) {
    h.format = ImageFormat::kGif;
  } else if (n >= 2 && d[0] == 'B' && d[1] == 'M') {
    h.format = ImageFormat::kBmp;
  } else if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) {
    h.format = ImageFormat::kTiff;
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
  if (static_cast<int64_t>(h.width) * h.height > o.max_pixels)
    return fail("too many pixels (" + std::to_string(h.width) + "x" + std::to_string(h.height) +
                ")");
  if (h.format == ImageFormat::kJpeg && !jpeg_has_eoi(data, size, h.sos_offset))
    return fail("truncated jpeg (no EOI marker)");
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
