#include "aim/data/jpeg_region.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "libjpeg_errors.h"

namespace aim::data {

bool jpeg_data_is_corrupt(const std::string& why) { return why.rfind("corrupt jpeg (", 0) == 0; }

bool decode_jpeg_region(const uint8_t* data, size_t size, const CropBox& box, int out_size, int channels,
                        double min_ratio, JpegRegion& out, std::string* why) {
  jpeg_decompress_struct cinfo{};
  detail::JpegErrors err{};  // a corrupt-data warning in the rows decoded makes the sample bad
  detail::use_jpeg_errors(cinfo, err);
  // Locals changed after setjmp are indeterminate after a longjmp: the pixels live behind a
  // pointer fixed before it, so the error path can still free them.
  auto holder = std::make_unique<cv::Mat>();
  cv::Mat& region = *holder;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    if (why) *why = std::string("jpeg: ") + err.message;
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    if (why) *why = "cmyk jpeg";
    return false;
  }
  const double W = cinfo.image_width, H = cinfo.image_height;
  // Smallest M with the crop still >= min_ratio * out_size on both sides after scaling.
  const double need = min_ratio * out_size / std::max(1.0, std::min(box.w, box.h));
  int M = std::clamp(static_cast<int>(std::ceil(8.0 * need - 1e-9)), 1, 8);
  // Only the scales libjpeg-turbo has SIMD inverse DCTs for (8/8, and the reduced 4/8, 2/8,
  // 1/8): 3/8, 5/8, 6/8 and 7/8 run its scalar C kernels (and twice their size for 4:2:0
  // chroma, 10x10 ... 14x14), slower than the full-size SIMD transform plus a larger resize.
  M = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : 8;
  cinfo.scale_num = static_cast<unsigned>(M);
  cinfo.scale_denom = 8;
  cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_EXT_BGR;
  cinfo.dct_method = JDCT_ISLOW;  // what OpenCV's decoder uses: same pixels at scale 8/8
  jpeg_start_decompress(&cinfo);
  const double sx = cinfo.output_width / W, sy = cinfo.output_height / H;
  const int ow = static_cast<int>(cinfo.output_width), oh = static_cast<int>(cinfo.output_height);
  // Two columns of margin on each side: fancy chroma upsampling replicates the region's edge
  // columns, so they differ from a full decode; keep them outside the crop.
  int x0 = std::clamp(static_cast<int>(std::floor(box.x * sx)) - 2, 0, ow - 1);
  int x1 = std::clamp(static_cast<int>(std::ceil((box.x + box.w) * sx)) + 2, x0 + 1, ow);
  const int y0 = std::clamp(static_cast<int>(std::floor(box.y * sy)), 0, oh - 1);
  const int y1 = std::clamp(static_cast<int>(std::ceil((box.y + box.h) * sy)), y0 + 1, oh);
  JDIMENSION xoff = static_cast<JDIMENSION>(x0), width = static_cast<JDIMENSION>(x1 - x0);
  if (width < cinfo.output_width) jpeg_crop_scanline(&cinfo, &xoff, &width);  // widens to iMCU edges
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
  const int nc = cinfo.output_components;
  region.create(y1 - y0, static_cast<int>(cinfo.output_width), nc == 1 ? CV_8UC1 : CV_8UC3);
  while (static_cast<int>(cinfo.output_scanline) < y1) {
    JSAMPROW row = region.ptr<uint8_t>(static_cast<int>(cinfo.output_scanline) - y0);
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  // After jpeg_crop_scanline, output_width is the cropped width; the rest is never decoded.
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (err.corrupt) {
    if (why) *why = std::string("corrupt jpeg (") + err.corrupt_message + ")";
    return false;
  }
  out.image = region(cv::Rect(0, 0, static_cast<int>(width), y1 - y0));
  out.box = {box.x * sx - static_cast<double>(xoff), box.y * sy - y0, box.w * sx, box.h * sy};
  out.scale = M;
  return true;
}

}  // namespace aim::data
