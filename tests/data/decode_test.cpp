#include <gtest/gtest.h>

#include <cstdlib>

#include "aim/data/decode.h"
#include "aim/data/image_folder_source.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {
cv::Mat dec(const std::vector<uint8_t>& b, std::string* why, int channels = 3, int reduce = 1) {
  DecodeOptions o;
  o.channels = channels;
  o.reduce = reduce;
  return decode_image(b.data(), b.size(), o, why);
}
}  // namespace

TEST(DataDecode, ProbesFormatAndSizeWithoutDecoding) {
  auto j = t::jpeg(470, 450);
  auto h = probe_image(j.data(), j.size());
  EXPECT_EQ(h.format, ImageFormat::kJpeg);
  EXPECT_EQ(h.width, 470);
  EXPECT_EQ(h.height, 450);
  auto p = t::encode(t::photo(33, 17), ".png");
  h = probe_image(p.data(), p.size());
  EXPECT_EQ(h.format, ImageFormat::kPng);
  EXPECT_EQ(h.width, 33);
  EXPECT_EQ(h.height, 17);
  auto w = t::encode(t::photo(40, 30), ".webp");
  AIM_REQUIRE_DEPENDENCY(!w.empty(), "OpenCV's WebP codec (libopencv-imgcodecs with libwebp)");
  {
    h = probe_image(w.data(), w.size());
    EXPECT_EQ(h.format, ImageFormat::kWebp);
    EXPECT_EQ(h.width, 40);
    EXPECT_EQ(h.height, 30);
    std::string why;
    EXPECT_EQ(dec(w, &why).size(), cv::Size(40, 30)) << why;
  }
}

TEST(DataDecode, ReducedJpegDecodeUsesDctScaling) {
  auto j = t::jpeg(800, 600);
  std::string why;
  EXPECT_EQ(dec(j, &why).size(), cv::Size(800, 600));
  EXPECT_EQ(dec(j, &why, 3, 2).size(), cv::Size(400, 300));
  EXPECT_EQ(dec(j, &why, 3, 4).size(), cv::Size(200, 150));
  cv::Mat g = dec(j, &why, 1, 8);
  EXPECT_EQ(g.size(), cv::Size(100, 75));
  EXPECT_EQ(g.channels(), 1);
  EXPECT_EQ(pick_reduction(900, 700, 224), 2);
  EXPECT_EQ(pick_reduction(1800, 1800, 224), 8);
  EXPECT_EQ(pick_reduction(300, 450, 224), 1);
  EXPECT_EQ(pick_reduction(448, 460, 224), 2);
}

TEST(DataDecode, GrayscaleAlphaSixteenBitBecomeEightBitRgb) {
  std::string why;
  cv::Mat gray(20, 30, CV_8U, cv::Scalar(90));
  cv::Mat m = dec(t::encode(gray, ".jpg"), &why);
  ASSERT_FALSE(m.empty()) << why;
  EXPECT_EQ(m.channels(), 3);
  EXPECT_NEAR(m.at<cv::Vec3b>(5, 5)[2], 90, 2);

  cv::Mat rgba(10, 12, CV_8UC4, cv::Scalar(10, 20, 30, 0));  // fully transparent
  m = dec(t::encode(rgba, ".png"), &why);
  ASSERT_FALSE(m.empty()) << why;
  EXPECT_EQ(m.channels(), 3);
  EXPECT_EQ(m.at<cv::Vec3b>(0, 0), cv::Vec3b(10, 20, 30));

  cv::Mat deep(10, 12, CV_16UC3, cv::Scalar(0, 32896, 65535));
  m = dec(t::encode(deep, ".png"), &why);
  ASSERT_FALSE(m.empty()) << why;
  EXPECT_EQ(m.depth(), CV_8U);
  EXPECT_EQ(m.at<cv::Vec3b>(3, 3), cv::Vec3b(0, 128, 255));

  cv::Mat one = dec(t::encode(t::photo(16, 16), ".png"), &why, 1);
  EXPECT_EQ(one.channels(), 1);
}

TEST(DataDecode, CmykJpegDecodes) {
  // OpenCV cannot write CMYK; PIL (python3-pil) can.
  t::TempDir d;
  std::string py = std::string(AIM_PYTHON) + " -c \"from PIL import Image; Image.new('CMYK', (24, 16), (0, 255, 255, 0)).save('" +
                   (d / "cmyk.jpg") + "')\" 2>/dev/null";
  AIM_REQUIRE_DEPENDENCY(std::system(py.c_str()) == 0, "python3-pil");
  std::vector<uint8_t> b;
  ASSERT_TRUE(read_file(d / "cmyk.jpg", b, nullptr));
  std::string why;
  cv::Mat m = dec(b, &why);
  ASSERT_FALSE(m.empty()) << why;
  EXPECT_EQ(m.size(), cv::Size(24, 16));
  EXPECT_EQ(m.channels(), 3);
  cv::Vec3b px = m.at<cv::Vec3b>(8, 12);  // C=0, M=Y=255: red
  EXPECT_GT(px[2], 200);
  EXPECT_LT(px[1], 60);
}

TEST(DataDecode, BadInputsAreRefusedWithAReason) {
  std::string why;
  EXPECT_TRUE(dec({}, &why).empty());
  EXPECT_EQ(why, "empty file");
  std::string html = "<html>404 not found</html>";
  EXPECT_TRUE(dec(std::vector<uint8_t>(html.begin(), html.end()), &why).empty());
  EXPECT_EQ(why, "not an image (unknown format)");

  auto j = t::jpeg(64, 48);
  auto cut = std::vector<uint8_t>(j.begin(), j.begin() + j.size() * 2 / 3);
  EXPECT_TRUE(dec(cut, &why).empty());
  EXPECT_EQ(why, "truncated jpeg (no EOI marker)");

  auto p = t::encode(t::photo(64, 48), ".png");
  auto pcut = std::vector<uint8_t>(p.begin(), p.begin() + p.size() / 2);
  EXPECT_TRUE(dec(pcut, &why).empty());
  EXPECT_FALSE(why.empty());

  EXPECT_TRUE(dec(t::jpeg_with_dims(60000, 60000), &why).empty());
  EXPECT_EQ(why, "too many pixels (60000x60000)");
  EXPECT_TRUE(dec(t::png_with_dims(100000, 100000), &why).empty());
  EXPECT_EQ(why.rfind("too many pixels", 0), 0u) << why;
  // Garbage after a valid header: the decoder fails, we do not crash.
  auto garbage = j;
  for (size_t i = 200; i < garbage.size() - 2; ++i) garbage[i] = static_cast<uint8_t>(i * 31);
  garbage[garbage.size() - 2] = 0xFF;
  garbage[garbage.size() - 1] = 0xD9;
  cv::Mat g = dec(garbage, &why);  // libjpeg may "recover" garbage; only require no crash
  (void)g;
}
