// The libjpeg-turbo region decoder: at scale 8/8 it reproduces OpenCV's full decode pixel
// for pixel inside the crop; at reduced scales the final 224-style crop stays close to the
// full-decode path; broken data fails cleanly (callers fall back to the full decoder).
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <opencv2/imgproc.hpp>

#include "aim/data/jpeg_region.h"
#include "aim/data/transforms.h"

using namespace aim::data;

namespace {

/// Gradients plus either hard-edged checks (worst case for exactness) or smooth waves (a
/// photo-like spectrum, for the resampling comparison).
std::vector<uint8_t> test_jpeg(int w, int h, bool gray = false, bool smooth = false) {
  cv::Mat img(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double wave = 100 + 80 * std::sin(x / 17.0) * std::cos(y / 23.0);
      img.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<uint8_t>((x * 255) / w), static_cast<uint8_t>((y * 255) / h),
                    static_cast<uint8_t>(smooth ? wave : ((x / 13 + y / 11) % 2) * 180 + 30));
    }
  if (gray) cv::cvtColor(img, img, cv::COLOR_BGR2GRAY);
  std::vector<uint8_t> buf;
  cv::imencode(".jpg", img, buf, {cv::IMWRITE_JPEG_QUALITY, 90});
  return buf;
}

cv::Mat full_decode(const std::vector<uint8_t>& b, int channels) {
  return cv::imdecode(b, (channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR) | cv::IMREAD_IGNORE_ORIENTATION);
}

double mean_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  return cv::mean(d.reshape(1))[0];
}

TEST(JpegRegion, FullScaleMatchesOpenCvInsideTheCrop) {
  for (int channels : {3, 1}) {
    const auto jpg = test_jpeg(470, 350);
    const CropBox box{101.3, 57.8, 300.2, 250.4};
    JpegRegion r;
    std::string why;
    ASSERT_TRUE(decode_jpeg_region(jpg.data(), jpg.size(), box, 224, channels, 2.0, r, &why)) << why;
    EXPECT_EQ(r.scale, 8);  // min_ratio 2: no reduction possible
    const cv::Mat full = full_decode(jpg, channels);
    const int xoff = static_cast<int>(std::lround(box.x - r.box.x)), yoff = static_cast<int>(std::lround(box.y - r.box.y));
    EXPECT_LE(xoff, 101);
    EXPECT_LE(xoff + r.image.cols, 470);
    EXPECT_GE(xoff + r.image.cols, 402);  // covers the crop's right edge
    EXPECT_GE(yoff + r.image.rows, 308);
    // Every pixel the crop uses is the full decode's (the region may extend a little beyond).
    const int cx = static_cast<int>(std::floor(box.x)), cy = static_cast<int>(std::floor(box.y));
    const int cols = static_cast<int>(std::ceil(box.x + box.w)) - cx, rows = static_cast<int>(std::ceil(box.y + box.h)) - cy;
    ASSERT_GE(cx, xoff);
    ASSERT_GE(cy, yoff);
    ASSERT_LE(cx - xoff + cols, r.image.cols);
    ASSERT_LE(cy - yoff + rows, r.image.rows);
    EXPECT_EQ(cv::norm(r.image(cv::Rect(cx - xoff, cy - yoff, cols, rows)), full(cv::Rect(cx, cy, cols, rows)),
                       cv::NORM_INF),
              0.0)
        << "channels " << channels;
  }
}

TEST(JpegRegion, ReducedScaleCropStaysCloseToTheFullDecodePath) {
  const auto jpg = test_jpeg(960, 900, false, /*smooth=*/true);
  for (const CropBox& box : {CropBox{10, 20, 900, 860}, CropBox{100, 80, 500, 460}, CropBox{0, 0, 960, 900}}) {
    JpegRegion r;
    ASSERT_TRUE(decode_jpeg_region(jpg.data(), jpg.size(), box, 224, 3, 1.0, r, nullptr));
    EXPECT_LT(r.scale, 8);  // these crops are >= 2 x 224 px: the IDCT runs scaled
    EXPECT_EQ(r.scale & (r.scale - 1), 0) << "only the scales libjpeg-turbo has SIMD kernels for";
    EXPECT_GE(r.box.w, 224 - 1e-6);
    EXPECT_GE(r.box.h, 224 - 1e-6);
    const cv::Mat ours = crop_resize(r.image, r.box, r.image.cols, r.image.rows, 224);
    const cv::Mat ref = crop_resize(full_decode(jpg, 3), box, 960, 900, 224);
    EXPECT_LT(mean_abs_diff(ours, ref), 3.0) << "box " << box.x << "," << box.y << " scale " << r.scale;
  }
}

TEST(JpegRegion, GrayJpegToColourAndBrokenDataFailCleanly) {
  const auto gray = test_jpeg(300, 200, /*gray=*/true);
  JpegRegion r;
  ASSERT_TRUE(decode_jpeg_region(gray.data(), gray.size(), {0, 0, 300, 200}, 64, 3, 1.0, r, nullptr));
  EXPECT_EQ(r.image.channels(), 3);

  auto broken = test_jpeg(300, 200);
  for (size_t i = broken.size() / 3; i < broken.size() - 2; ++i) broken[i] = static_cast<uint8_t>(i * 131);
  std::string why;
  JpegRegion b;
  // Either libjpeg notices (false + reason) or it decodes garbage pixels: it must not crash.
  if (!decode_jpeg_region(broken.data(), broken.size(), {0, 0, 300, 200}, 64, 3, 1.0, b, &why)) {
    EXPECT_FALSE(why.empty());
  }
  const std::vector<uint8_t> header_only(broken.begin(), broken.begin() + 200);
  EXPECT_FALSE(decode_jpeg_region(header_only.data(), header_only.size(), {0, 0, 300, 200}, 64, 3, 1.0, b, &why));
  EXPECT_NE(why.find("jpeg"), std::string::npos) << why;
}

}  // namespace
