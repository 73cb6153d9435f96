#pragma once
// Image decoding with the checks web data needs: sniff the format from the bytes (never trust
// the extension), read dimensions from the header so decompression bombs are refused before
// any pixel is decoded, reject truncated JPEGs (libjpeg would silently pad them with gray),
// and decode JPEGs at 1/2, 1/4 or 1/8 size in the DCT domain when the crop allows it. The
// training and eval transforms first try jpeg_region.h (just the crop, any M/8 scale) and
// come here for everything else.
#include <cstdint>
#include <opencv2/core.hpp>
#include <string>

namespace aim::data {

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp, kGif, kBmp, kTiff };

struct ImageHeader {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0, height = 0;  // 0 when the header does not say (or is not parsed: GIF)
  int64_t sos_offset = -1;    // JPEG: start-of-scan marker, to look for the EOI after it
};

/// Reads the format and the dimensions from the header (JPEG frame header, PNG IHDR, WebP
/// VP8/VP8L/VP8X, BMP DIB header, TIFF first IFD); never decodes.
ImageHeader probe_image(const uint8_t* data, size_t size);

struct DecodeOptions {
  int channels = 3;                  // 3: RGB-ordered output is produced later; here BGR; 1: gray
  int reduce = 1;                    // 1, 2, 4 or 8: DCT-domain downscale (JPEG only)
  int64_t max_pixels = 1ll << 26;    // ~67 MP; larger images are refused as bombs
  // JPEG: entropy-decode the whole file first (verify_jpeg) and refuse corrupt data, which
  // OpenCV decodes into gray or garbage without a word. `aim-data check` and `pack` do; the
  // training path finds corruption in the rows it decodes (jpeg_region.h) instead.
  bool verify_jpeg_data = false;
};

/// Decodes to 8-bit BGR (channels 3; gray, CMYK, 16-bit and alpha are converted) or 8-bit gray
/// (channels 1). On failure returns an empty Mat and puts a short reason in *why. Nothing is
/// decoded whose size is unknown or above max_pixels; a JPEG whose header the probe could not
/// follow is checked whole by verify_jpeg (jpeg_verify.h) first.
cv::Mat decode_image(const uint8_t* data, size_t size, const DecodeOptions& options,
                     std::string* why);

/// Largest DCT reduction (1, 2, 4, 8) that still leaves at least min_ratio * out pixels across
/// the crop in both directions, so the final resize never upsamples what the crop had.
int pick_reduction(int crop_w, int crop_h, int out_size, double min_ratio = 1.0);

const char* format_name(ImageFormat f);

/// A complete JPEG has an EOI marker after its scan data (sos: ImageHeader::sos_offset);
/// libjpeg "recovers" truncated files by padding gray, so those are refused instead. False
/// when the scan was not found (sos < 0).
bool jpeg_has_eoi(const uint8_t* data, size_t size, int64_t sos_offset);

}  // namespace aim::data
