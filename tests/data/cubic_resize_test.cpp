#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>
#include <random>

#include "aim/data/cubic_resize.h"
#include "aim/data/transforms.h"

using namespace aim::data;

namespace {

cv::Mat noise(int h, int w, int type, uint32_t seed) {
  cv::Mat m(h, w, type);
  std::mt19937 gen(seed);
  for (int y = 0; y < h; ++y) {
    uint8_t* p = m.ptr<uint8_t>(y);
    for (size_t i = 0; i < static_cast<size_t>(w) * m.channels(); ++i) p[i] = static_cast<uint8_t>(gen() & 255);
  }
  return m;
}

struct Diff {
  double max = 0;
  double differing = 0;  // fraction of values that differ
};

Diff compare(const cv::Mat& a, const cv::Mat& b) {
  EXPECT_EQ(a.size(), b.size());
  EXPECT_EQ(a.type(), b.type());
  cv::Mat d;
  cv::absdiff(a, b, d);
  Diff r;
  cv::minMaxLoc(d.reshape(1), nullptr, &r.max);
  r.differing = static_cast<double>(cv::countNonZero(d.reshape(1))) / static_cast<double>(d.total() * d.channels());
  return r;
}

}  // namespace

// The reference is OpenCV's own INTER_CUBIC, which the loader used before: same filter, same
// fixed-point weights, same edge handling, so at most one level apart, and that only on rare ties.
TEST(CubicResize, MatchesOpenCvInterCubicWithinOneLevel) {
  std::mt19937 gen(3);
  const int sizes[][4] = {  // in_w, in_h, out_w, out_h
      {470, 450, 224, 224}, {300, 431, 224, 224}, {447, 300, 224, 224}, {224, 300, 224, 224},
      {18, 22, 28, 28},     {28, 28, 28, 28},     {1, 1, 5, 7},         {2, 3, 224, 224},
      {5, 400, 3, 200},     {640, 17, 224, 224},  {96, 96, 224, 224},   {333, 333, 17, 19}};
  double worst_fraction = 0;
  for (const auto& s : sizes) {
    for (int type : {CV_8UC3, CV_8UC1}) {
      cv::Mat src = noise(s[1], s[0], type, static_cast<uint32_t>(gen()));
      cv::Mat ref;
      cv::resize(src, ref, cv::Size(s[2], s[3]), 0, 0, cv::INTER_CUBIC);
      Diff d = compare(resize_cubic(src, s[2], s[3]), ref);
      EXPECT_LE(d.max, 1) << s[0] << "x" << s[1] << " -> " << s[2] << "x" << s[3] << " type " << type;
      worst_fraction = std::max(worst_fraction, d.differing);
    }
  }
  // A systematic error (a shifted tap, a wrong weight) moves most pixels; ties move almost none.
  EXPECT_LT(worst_fraction, 0.002);
}

TEST(CubicResize, ReadsOnlyItsRoiAndMatchesOnSmoothImages) {
  // A crop inside a larger image (non-contiguous rows): the pixels outside must not leak in at
  // the edges, where the filter repeats the ROI's own edge pixels.
  cv::Mat big(500, 520, CV_8UC3, cv::Scalar(255, 0, 255));
  cv::Mat inner = noise(300, 310, CV_8UC3, 11);
  cv::GaussianBlur(inner, inner, cv::Size(0, 0), 3);
  inner.copyTo(big(cv::Rect(100, 90, 310, 300)));
  cv::Mat roi = big(cv::Rect(100, 90, 310, 300));
  ASSERT_FALSE(roi.isContinuous());
  cv::Mat ref;
  cv::resize(inner, ref, cv::Size(224, 224), 0, 0, cv::INTER_CUBIC);
  Diff d = compare(resize_cubic(roi, 224, 224), ref);
  EXPECT_LE(d.max, 1);
  EXPECT_LT(d.differing, 0.002);
}

TEST(CubicResize, CropResizeUsesItForBicubicAndKeepsAreaForLargeShrinks) {
  cv::Mat img = noise(450, 470, CV_8UC3, 5);
  CropBox box{40, 30, 300, 320};
  cv::Mat ref;
  cv::resize(img(cv::Rect(40, 30, 300, 320)), ref, cv::Size(224, 224), 0, 0, cv::INTER_CUBIC);
  Diff d = compare(crop_resize(img, box, 470, 450, 224), ref);
  EXPECT_LE(d.max, 1);
  // Shrinking by 2x or more in both directions stays with the area filter (bicubic would alias).
  CropBox whole{0, 0, 470, 450};
  cv::Mat area;
  cv::resize(img, area, cv::Size(112, 112), 0, 0, cv::INTER_AREA);
  EXPECT_EQ(compare(crop_resize(img, whole, 470, 450, 112), area).max, 0);
}
