#include <gtest/gtest.h>

#include <cmath>

#include "aim/data/decode.h"
#include "aim/data/sample_transform.h"
#include "aim/data/transforms.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

TEST(DataTransforms, RandomResizedCropFollowsScaleAndRatio) {
  AugmentConfig a;
  int inside = 0;
  for (uint64_t i = 0; i < 3000; ++i) {
    Rng rng(7, Stream::kAugment, i);
    CropBox b = random_resized_crop(470, 450, a, rng);
    ASSERT_GE(b.x, 0);
    ASSERT_GE(b.y, 0);
    ASSERT_LE(b.x + b.w, 470);
    ASSERT_LE(b.y + b.h, 450);
    double frac = b.w * b.h / (470.0 * 450.0), ratio = b.w / b.h;
    // Rounding to whole pixels moves area and ratio by well under 1 %.
    if (frac >= 0.4 * 0.99 && frac <= 1.0 && ratio >= 0.75 * 0.99 && ratio <= 4.0 / 3 * 1.01) ++inside;
  }
  EXPECT_EQ(inside, 3000);
  // Same key, same box: nothing depends on call order or thread.
  Rng r1(7, Stream::kAugment, 5), r2(7, Stream::kAugment, 5);
  CropBox b1 = random_resized_crop(470, 450, a, r1), b2 = random_resized_crop(470, 450, a, r2);
  EXPECT_EQ(b1.x, b2.x);
  EXPECT_EQ(b1.w, b2.w);
  // Extreme aspect: falls back to the ratio-clamped center crop.
  Rng r3(1);
  a.scale_min = a.scale_max = 1.0;
  CropBox f = random_resized_crop(1000, 50, a, r3);
  EXPECT_NEAR(f.w / f.h, 4.0 / 3, 0.05);
  EXPECT_NEAR(f.x + f.w / 2, 500, 1);
}

TEST(DataTransforms, EvalCenterCropMatchesResize256Crop224) {
  CropBox b = center_crop(500, 375, 224, 0.875);
  EXPECT_NEAR(b.w, 375 * 0.875, 1e-9);  // 224 of 256 after scaling the short side to 256
  EXPECT_NEAR(b.x + b.w / 2, 250, 1e-9);
  EXPECT_NEAR(b.y + b.h / 2, 187.5, 1e-9);
}

TEST(DataTransforms, ReducedDecodeGivesNearlyTheSameCrop) {
  auto jpg = t::jpeg(1024, 900, 3, 95);
  CropBox box{100, 80, 800, 760};
  std::string why;
  DecodeOptions full, quarter;
  quarter.reduce = pick_reduction(800, 760, 192);
  ASSERT_EQ(quarter.reduce, 2);
  cv::Mat a = crop_resize(decode_image(jpg.data(), jpg.size(), full, &why), box, 1024, 900, 192);
  cv::Mat b = crop_resize(decode_image(jpg.data(), jpg.size(), quarter, &why), box, 1024, 900, 192);
  cv::Mat diff;
  cv::absdiff(a, b, diff);
  EXPECT_LT(cv::mean(diff)[0], 4.0);  // mean absolute difference, in 0..255 levels
}

TEST(DataTransforms, ChwRgbOrderFlipAndJitter) {
  cv::Mat red(4, 5, CV_8UC3, cv::Scalar(0, 0, 255));  // BGR
  std::vector<uint8_t> out(3 * 20);
  to_chw_rgb(red, out.data());
  EXPECT_EQ(out[0], 255);
  EXPECT_EQ(out[20], 0);
  EXPECT_EQ(out[40], 0);

  TransformConfig tc;
  tc.img_size = 32;
  tc.augment.hflip = 1.0;
  tc.augment.color_jitter = 1.0;
  SampleTransform tf(tc);
  RawSample raw;
  raw.bytes = t::jpeg(64, 48, 1);
  std::vector<uint8_t> x(3 * 32 * 32), y(3 * 32 * 32);
  std::string why;
  ASSERT_TRUE(tf.apply(raw, 11, x.data(), &why)) << why;
  ASSERT_TRUE(tf.apply(raw, 11, y.data(), &why));
  EXPECT_EQ(x, y);  // a pure function of (seed, index)
  ASSERT_TRUE(tf.apply(raw, 12, y.data(), &why));
  EXPECT_NE(x, y);
  // Gray model input from a colour image, and gray IDX-like pixels into an RGB model.
  tc.channels = 1;
  std::vector<uint8_t> g(32 * 32);
  ASSERT_TRUE(SampleTransform(tc).apply(raw, 1, g.data(), &why));
  tc.channels = 3;
  tc.train = false;
  RawSample gray;
  gray.pixels = cv::Mat(28, 28, CV_8U, cv::Scalar(77));
  ASSERT_TRUE(SampleTransform(tc).apply(gray, 1, x.data(), &why));
  EXPECT_EQ(x[0], 77);
  EXPECT_EQ(x[1024], 77);
  EXPECT_EQ(x[2048 + 500], 77);
}

// hflip mirrors exactly the view that would have been produced unflipped (the crop is drawn
// first from the same per-sample stream), and hflip=0 never mirrors.
TEST(DataTransforms, FlipMirrorsTheUnflippedView) {
  TransformConfig tc;
  tc.img_size = 16;
  tc.augment.scale_min = tc.augment.scale_max = 1.0;
  tc.augment.ratio_min = tc.augment.ratio_max = 1.0;
  RawSample raw;  // a horizontal ramp with a marked corner: no symmetry to hide a missing flip
  raw.pixels = cv::Mat(16, 16, CV_8UC3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x) raw.pixels.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 15, y * 15, 200);
  raw.pixels.at<cv::Vec3b>(0, 0) = cv::Vec3b(255, 255, 255);
  const size_t plane = 16 * 16;
  std::vector<uint8_t> plain(3 * plane), flipped(3 * plane);
  std::string why;
  for (uint64_t g : {3u, 4u, 5u}) {
    tc.augment.hflip = 0;
    ASSERT_TRUE(SampleTransform(tc).apply(raw, g, plain.data(), &why)) << why;
    tc.augment.hflip = 1;
    ASSERT_TRUE(SampleTransform(tc).apply(raw, g, flipped.data(), &why)) << why;
    EXPECT_NE(plain, flipped);
    for (size_t c = 0; c < 3; ++c)
      for (size_t y = 0; y < 16; ++y)
        for (size_t x = 0; x < 16; ++x)
          ASSERT_EQ(flipped[c * plane + y * 16 + x], plain[c * plane + y * 16 + (15 - x)])
              << "c " << c << " y " << y << " x " << x << " index " << g;
  }
  // The unflipped view is the input itself (full-image crop at the same size), RGB order.
  EXPECT_EQ(plain[0], 255);
  EXPECT_EQ(plain[2 * plane + 1], 15);  // blue plane, x = 1
  EXPECT_EQ(plain[0 * plane + 1], 200);  // red plane
}

// Brightness jitter scales every pixel by one factor in [1 - b, 1 + b], and over many
// samples the factors cover that range; saturation and hue leave a gray image gray; a
// jitter probability of 0 changes nothing.
TEST(DataTransforms, ColorJitterStaysWithinItsBounds) {
  TransformConfig tc;
  tc.img_size = 8;
  tc.augment.scale_min = tc.augment.scale_max = 1.0;
  tc.augment.ratio_min = tc.augment.ratio_max = 1.0;
  tc.augment.hflip = 0;
  tc.augment.color_jitter = 1.0;
  tc.augment.brightness = 0.4;
  tc.augment.contrast = tc.augment.saturation = tc.augment.hue = 0;
  RawSample gray;
  gray.pixels = cv::Mat(8, 8, CV_8UC3, cv::Scalar(100, 100, 100));
  std::vector<uint8_t> out(3 * 64);
  std::string why;
  int lo = 255, hi = 0;
  for (uint64_t g = 0; g < 400; ++g) {
    ASSERT_TRUE(SampleTransform(tc).apply(gray, g, out.data(), &why)) << why;
    for (auto v : out) ASSERT_EQ(v, out[0]) << "brightness must scale every pixel alike";
    ASSERT_GE(out[0], 60) << "factor below 1 - brightness";
    ASSERT_LE(out[0], 140) << "factor above 1 + brightness";
    lo = std::min<int>(lo, out[0]), hi = std::max<int>(hi, out[0]);
  }
  EXPECT_LT(lo, 66) << "the factors do not reach down to 1 - brightness";
  EXPECT_GT(hi, 134) << "the factors do not reach up to 1 + brightness";

  tc.augment.brightness = 0;
  tc.augment.saturation = 0.8;
  tc.augment.hue = 0.5;
  for (uint64_t g = 0; g < 50; ++g) {
    ASSERT_TRUE(SampleTransform(tc).apply(gray, g, out.data(), &why)) << why;
    for (auto v : out) ASSERT_NEAR(v, 100, 1) << "saturation/hue changed a gray image";
  }

  tc.augment.color_jitter = 0;
  tc.augment.brightness = 0.4;
  for (uint64_t g = 0; g < 50; ++g) {
    ASSERT_TRUE(SampleTransform(tc).apply(gray, g, out.data(), &why)) << why;
    for (auto v : out) ASSERT_EQ(v, 100) << "jitter applied with probability 0";
  }
}

