// Crafted images: JPEGs with stray bytes between their segments (libjpeg skips them, so must
// the header probe), and TIFF/BMP headers whose sizes are decompression bombs. Bombs decode
// in a child process, so the test sees the memory a decode would have taken.
#include <gtest/gtest.h>

#include <cstdlib>

#include "aim/data/decode.h"
#include "aim/data/sample_transform.h"
#include "child_process.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {

cv::Mat dec_hostile(const std::vector<uint8_t>& b, std::string* why, int64_t max_pixels = 1ll << 26) {
  DecodeOptions o;
  o.max_pixels = max_pixels;
  return decode_image(b.data(), b.size(), o, why);
}

// A JPEG with `junk` inserted right after its APP0 (JFIF) segment.
std::vector<uint8_t> jpeg_with_junk(const std::vector<uint8_t>& j, const std::vector<uint8_t>& junk) {
  EXPECT_TRUE(j[2] == 0xFF && j[3] == 0xE0) << "expected APP0 first";
  size_t after_app0 = 4 + ((j[4] << 8) | j[5]);
  std::vector<uint8_t> out(j.begin(), j.begin() + after_app0);
  out.insert(out.end(), junk.begin(), junk.end());
  out.insert(out.end(), j.begin() + after_app0, j.end());
  return out;
}

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v, bool big) {
  b[at] = big ? v >> 8 : v & 255;
  b[at + 1] = big ? v & 255 : v >> 8;
}
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v, bool big) {
  for (int k = 0; k < 4; ++k) b[at + k] = (v >> (big ? 24 - 8 * k : 8 * k)) & 255;
}

// An uncompressed 8-bit gray TIFF, written by hand so both byte orders can be tested.
std::vector<uint8_t> gray_tiff(uint32_t w, uint32_t h, bool big, uint8_t value = 100) {
  const int entries = 8;
  const size_t ifd = 8, data = ifd + 2 + 12 * entries + 4;
  std::vector<uint8_t> b(data + size_t{w} * h, value);
  std::memcpy(b.data(), big ? "MM\0*" : "II*\0", 4);
  put32(b, 4, ifd, big);
  put16(b, ifd, entries, big);
  const uint32_t tags[entries][3] = {{256, 4, w}, {257, 4, h},    {258, 3, 8},        {259, 3, 1},
                                     {262, 3, 1}, {273, 4, static_cast<uint32_t>(data)}, {278, 4, h},
                                     {279, 4, w * h}};
  for (int e = 0; e < entries; ++e) {
    size_t at = ifd + 2 + 12 * e;
    put16(b, at, tags[e][0], big);
    put16(b, at + 2, tags[e][1], big);
    put32(b, at + 4, 1, big);
    put32(b, at + 8, 0, big);
    if (tags[e][1] == 3)
      put16(b, at + 8, tags[e][2], big);
    else
      put32(b, at + 8, tags[e][2], big);
  }
  put32(b, ifd + 2 + 12 * entries, 0, big);
  return b;
}

}  // namespace

// Fails on main: the probe gave up at the first stray byte, so neither the truncation check
// nor the pixel cap ran, and libjpeg padded the missing half with gray.
TEST(HostileImage, JpegProbeSkipsStrayBytesBetweenSegments) {
  const auto j = t::jpeg(64, 48, 3);
  for (const std::vector<uint8_t>& junk : std::vector<std::vector<uint8_t>>{
           {0x12, 0x34}, {0x00}, {0xFF, 0x00, 0x7A}, {0xFF, 0xFF, 0xFF}, {0x01, 0xFF, 0x00, 0xFF}}) {
    auto odd = jpeg_with_junk(j, junk);
    auto h = probe_image(odd.data(), odd.size());
    EXPECT_EQ(h.width, 64) << "junk of " << junk.size() << " bytes";
    EXPECT_EQ(h.height, 48);
    EXPECT_GT(h.sos_offset, 0);
    std::string why;
    cv::Mat m = dec_hostile(odd, &why);  // whole: libjpeg decodes it (with a warning), so do we
    EXPECT_EQ(m.size(), cv::Size(64, 48)) << why;
    auto half = std::vector<uint8_t>(odd.begin(), odd.begin() + odd.size() / 2);
    EXPECT_TRUE(dec_hostile(half, &why).empty()) << "a half JPEG decoded";
    EXPECT_NE(why.find("truncated jpeg"), std::string::npos) << why;
  }
}

// Fails on main: the training transform turned the half JPEG into a "good" sample.
TEST(HostileImage, TruncatedJpegWithJunkIsABadSampleInTheLoaderPath) {
  auto odd = jpeg_with_junk(t::jpeg(300, 200, 5), {0x12, 0x34});
  RawSample raw;
  raw.bytes.assign(odd.begin(), odd.begin() + odd.size() / 2);
  for (bool train : {true, false}) {
    TransformConfig tc;
    tc.img_size = 32;
    tc.train = train;
    SampleTransform tf(tc);
    PreparedSample p;
    std::string why;
    EXPECT_FALSE(tf.prepare(raw, 7, p, &why)) << (train ? "train" : "eval");
    EXPECT_NE(why.find("truncated jpeg"), std::string::npos) << why;
  }
}

// Fails on main: behind stray bytes a 20000 x 20000 frame header was never seen, so the decoder
// allocated the frame.
TEST(HostileImage, JpegPixelCapHoldsBehindStrayBytes) {
  auto bomb = jpeg_with_junk(t::jpeg_with_dims(20000, 20000), {0x12, 0x34});
  auto r = t::run_in_child(
      [&] {
        std::string why;
        bool refused = dec_hostile(bomb, &why).empty();
        std::fprintf(stderr, "why: %s\n", why.c_str());
        return refused && why.find("too many pixels") != std::string::npos ? 0 : 1;
      },
      60);
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_LT(r.peak_growth_mb, 100);
}

// A JPEG whose header the probe cannot follow (cut inside its segments) is never taken as
// good: it is decoded in full by libjpeg and refused when the data runs out.
TEST(HostileImage, JpegWithoutAFoundFrameHeaderIsVerifiedNotTrusted) {
  auto j = t::jpeg(64, 48, 3);
  auto h = probe_image(j.data(), j.size());
  ASSERT_GT(h.sos_offset, 20);
  std::vector<uint8_t> cut(j.begin(), j.begin() + 40);  // inside the quantization tables
  h = probe_image(cut.data(), cut.size());
  EXPECT_EQ(h.width, 0);
  std::string why;
  EXPECT_TRUE(dec_hostile(cut, &why).empty());
  EXPECT_NE(why.find("truncated jpeg"), std::string::npos) << why;
}

// Fails on main: TIFF and BMP sizes were not read from the header, so nothing stopped a
// 214 KB deflate TIFF from decoding to 12000 x 12000.
TEST(HostileImage, TiffAndBmpSizesComeFromTheHeader) {
  for (bool big : {false, true}) {
    auto tif = gray_tiff(37, 23, big);
    auto h = probe_image(tif.data(), tif.size());
    EXPECT_EQ(h.format, ImageFormat::kTiff);
    EXPECT_EQ(h.width, 37) << (big ? "big endian" : "little endian");
    EXPECT_EQ(h.height, 23);
    std::string why;
    EXPECT_EQ(dec_hostile(tif, &why).size(), cv::Size(37, 23)) << why;
    EXPECT_TRUE(dec_hostile(tif, &why, 37 * 23 - 1).empty());
    EXPECT_NE(why.find("too many pixels (37x23)"), std::string::npos) << why;
  }
  auto opencv_tif = t::encode(t::photo(41, 29), ".tiff");
  auto h = probe_image(opencv_tif.data(), opencv_tif.size());
  EXPECT_EQ(h.width, 41);
  EXPECT_EQ(h.height, 29);

  auto bmp = t::encode(t::photo(37, 23), ".bmp");
  h = probe_image(bmp.data(), bmp.size());
  EXPECT_EQ(h.format, ImageFormat::kBmp);
  EXPECT_EQ(h.width, 37);
  EXPECT_EQ(h.height, 23);
  std::string why;
  EXPECT_TRUE(dec_hostile(bmp, &why, 37 * 23 - 1).empty());
  EXPECT_NE(why.find("too many pixels (37x23)"), std::string::npos) << why;
  put32(bmp, 22, static_cast<uint32_t>(-23), false);  // top-down rows: negative height
  h = probe_image(bmp.data(), bmp.size());
  EXPECT_EQ(h.height, 23);
  EXPECT_EQ(dec_hostile(bmp, &why).size(), cv::Size(37, 23)) << why;
  put32(bmp, 18, 30000, false);
  put32(bmp, 22, static_cast<uint32_t>(-30000), false);
  EXPECT_TRUE(dec_hostile(bmp, &why).empty());
  EXPECT_NE(why.find("too many pixels (30000x30000)"), std::string::npos) << why;
  // Headers too short to hold a size are refused rather than handed to the decoder.
  std::vector<uint8_t> stub(bmp.begin(), bmp.begin() + 16);
  EXPECT_TRUE(dec_hostile(stub, &why).empty());
  std::vector<uint8_t> tstub(opencv_tif.begin(), opencv_tif.begin() + 8);
  EXPECT_TRUE(dec_hostile(tstub, &why).empty());
}

// Fails on main: a deflate TIFF of ~150 KB decoded to 12000 x 12000 (432 MB as BGR) and was
// accepted. Now the header's size is refused before any pixel is decoded.
TEST(HostileImage, DeflateTiffBombIsRefusedBeforeDecoding) {
  t::TempDir d;
  const std::string path = d / "bomb.tif";
  std::string py = std::string(AIM_PYTHON) + " -c \"from PIL import Image; "
                   "Image.new('L', (12000, 12000)).save('" + path + "', compression='tiff_adobe_deflate')\"";
  if (std::system(py.c_str()) != 0) GTEST_SKIP() << "python3-pil unavailable";
  std::vector<uint8_t> bomb(std::filesystem::file_size(path));
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(bomb.data()), bomb.size());
  ASSERT_LT(bomb.size(), 1u << 20);
  auto r = t::run_in_child(
      [&] {
        std::string why;
        bool refused = dec_hostile(bomb, &why).empty();
        std::fprintf(stderr, "why: %s\n", why.c_str());
        return refused && why.find("too many pixels (12000x12000)") != std::string::npos ? 0 : 1;
      },
      60);
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_LT(r.peak_growth_mb, 100) << "the bomb was decoded";
}
