// JPEGs whose entropy-coded data is damaged but that still end in an EOI marker: a cut file
// with FFD9 appended, and one with a run of zeroed bytes. libjpeg decodes both "successfully"
// (gray rows, garbage) and only warns; on main those warnings were ignored in `check`,
// training and evaluation alike, and the images were used.
#include <gtest/gtest.h>

#include "aim/data/decode.h"
#include "aim/data/sample_transform.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {

std::vector<uint8_t> cut_with_eoi() {
  auto b = t::jpeg(256, 256, 3);
  b.resize(b.size() * 6 / 10);
  b.push_back(0xFF);
  b.push_back(0xD9);
  return b;
}

std::vector<uint8_t> zeroed_middle() {
  auto b = t::encode(t::photo(256, 256, 4), ".jpg", {cv::IMWRITE_JPEG_QUALITY, 90, cv::IMWRITE_JPEG_RST_INTERVAL, 4});
  const size_t from = b.size() / 2;
  std::fill(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(from + 400), 0);
  return b;
}

// The eval view of the whole image (center crop at 100 %): every row is decoded.
bool eval_transform(const std::vector<uint8_t>& bytes, std::string* why) {
  TransformConfig tc;
  tc.img_size = 64;
  tc.train = false;
  tc.augment.eval_crop_pct = 1.0;
  SampleTransform transform(tc);
  RawSample raw;
  raw.bytes = bytes;
  std::vector<uint8_t> out(3 * 64 * 64);
  return transform.apply(raw, 0, out.data(), why);
}

}  // namespace

TEST(CorruptJpeg, ACutFileWithEoiAppendedIsBadEverywhere) {
  const auto b = cut_with_eoi();
  ASSERT_TRUE(jpeg_has_eoi(b.data(), b.size(), probe_image(b.data(), b.size()).sos_offset));
  std::string why;
  DecodeOptions whole;
  whole.verify_jpeg_data = true;  // aim-data check and pack
  EXPECT_TRUE(decode_image(b.data(), b.size(), whole, &why).empty());
  EXPECT_NE(why.find("corrupt jpeg"), std::string::npos) << why;
  why.clear();
  EXPECT_FALSE(eval_transform(b, &why));  // training and evaluation
  EXPECT_NE(why.find("corrupt jpeg"), std::string::npos) << why;
}

TEST(CorruptJpeg, ZeroedBytesAreBadEverywhere) {
  const auto b = zeroed_middle();
  std::string why;
  DecodeOptions whole;
  whole.verify_jpeg_data = true;
  EXPECT_TRUE(decode_image(b.data(), b.size(), whole, &why).empty());
  EXPECT_NE(why.find("corrupt jpeg"), std::string::npos) << why;
  why.clear();
  EXPECT_FALSE(eval_transform(b, &why));
  EXPECT_NE(why.find("corrupt jpeg"), std::string::npos) << why;
}

// The check costs nothing to good files: an intact JPEG passes both ways, with the same pixels.
TEST(CorruptJpeg, IntactFilesStillPass) {
  const auto b = t::jpeg(256, 256, 5);
  std::string why;
  DecodeOptions whole;
  whole.verify_jpeg_data = true;
  const cv::Mat verified = decode_image(b.data(), b.size(), whole, &why);
  ASSERT_FALSE(verified.empty()) << why;
  const cv::Mat plain = decode_image(b.data(), b.size(), DecodeOptions{}, &why);
  EXPECT_EQ(cv::norm(verified, plain, cv::NORM_INF), 0.0);
  EXPECT_TRUE(eval_transform(b, &why)) << why;
}
