#pragma once
// The check for JPEGs whose header the probe could not follow (decode.h): rather than trust
// them, run libjpeg over the whole file and see whether the image is all there.
#include <cstddef>
#include <cstdint>
#include <string>

namespace aim::data {

/// Reads the frame size with libjpeg, refuses it above max_pixels before any scanline is
/// produced, then entropy-decodes every scan (at 1/8 scale, so the IDCT is nearly free) and
/// refuses data that ends before the image does, which libjpeg itself would pad with gray.
/// True when the file is a complete JPEG; else false with a reason in *why.
bool verify_jpeg(const uint8_t* data, size_t size, int64_t max_pixels, std::string* why);

}  // namespace aim::data
