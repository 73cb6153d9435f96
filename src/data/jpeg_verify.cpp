#include "aim/data/jpeg_verify.h"

#include <memory>
#include <vector>

#include "libjpeg_errors.h"

namespace aim::data {

bool verify_jpeg(const uint8_t* data, size_t size, int64_t max_pixels, std::string* why) {
  jpeg_decompress_struct cinfo{};
  detail::JpegErrors err{};
  detail::use_jpeg_errors(cinfo, err);
  // Locals changed after setjmp are indeterminate after a longjmp: the row lives behind a
  // pointer fixed before it.
  auto row = std::make_unique<std::vector<uint8_t>>();
  std::string reason;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    if (why) *why = err.premature_end ? "truncated jpeg (ends inside its header)" : std::string("jpeg: ") + err.message;
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const int64_t w = cinfo.image_width, h = cinfo.image_height;
  if (err.premature_end) {
    reason = "truncated jpeg (ends inside its header)";
  } else if (w * h > max_pixels) {
    reason = "too many pixels (" + std::to_string(w) + "x" + std::to_string(h) + ")";
  } else {
    cinfo.scale_num = 1;
    cinfo.scale_denom = 8;
    jpeg_start_decompress(&cinfo);  // a progressive file's scans are all read here
    row->resize(static_cast<size_t>(cinfo.output_width) * cinfo.output_components);
    JSAMPROW rows[1] = {row->data()};
    while (cinfo.output_scanline < cinfo.output_height) jpeg_read_scanlines(&cinfo, rows, 1);
    jpeg_finish_decompress(&cinfo);  // reads on to the EOI marker
    if (err.premature_end) reason = "truncated jpeg (data ends before the image does)";
    else if (err.corrupt) reason = std::string("corrupt jpeg (") + err.corrupt_message + ")";
  }
  jpeg_destroy_decompress(&cinfo);
  if (!reason.empty() && why) *why = reason;
  return reason.empty();
}

}  // namespace aim::data
