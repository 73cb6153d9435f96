#pragma once
// JPEG decoding of just the crop, at the smallest libjpeg-turbo scale that keeps enough
// pixels among those with SIMD inverse DCTs: M/8 for M = 1, 2, 4, 8 (the scalar 3/8, 5/8,
// 6/8 and 7/8 kernels cost more than the full-size SIMD transform plus a larger resize), columns
// outside the crop are never transformed or colour-converted (jpeg_crop_scanline), rows above
// it are skipped (jpeg_skip_scanlines) and decoding stops below it. Web images are ~300-500 px
// and RandomResizedCrop keeps 40-100 % of them at 224 px, so most of the full-size decode
// work is avoidable.
#include <opencv2/core.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "aim/data/transforms.h"

namespace aim::data {

struct JpegRegion {
  cv::Mat image;  // the decoded region, 8-bit BGR (channels 3) or gray (channels 1)
  CropBox box;    // the requested crop in the region's pixel coordinates
  int scale = 8;  // M of the M/8 scale used
};

/// Decodes the part of the JPEG covering `box` (original pixel coordinates) so that the crop
/// keeps at least min_ratio * out_size pixels per side. False (with *why) on any decoder error
/// or for colour spaces this path does not handle (CMYK/YCCK): callers fall back to the full
/// decode, which handles and reports those. A libjpeg warning that the data is corrupt
/// (jpeg_data_is_corrupt(*why)) in the rows decoded fails it too: those pixels are gray or
/// garbage, and the sample is bad (no fallback). Rows outside the crop are not decoded, so
/// damage there is not seen: the pixels used are the file's real ones.
bool decode_jpeg_region(const uint8_t* data, size_t size, const CropBox& box, int out_size, int channels,
                        double min_ratio, JpegRegion& out, std::string* why);

/// True for the reason decode_jpeg_region gives for corrupt data ("corrupt jpeg (...)").
bool jpeg_data_is_corrupt(const std::string& why);

}  // namespace aim::data
