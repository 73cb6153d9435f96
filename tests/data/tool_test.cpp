#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <set>

#include "aim/data/loader.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {
// Runs a command, returns (exit status, stdout).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  std::array<char, 4096> buf;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}
}  // namespace

TEST(DataTool, PackIdxThenCheckThenStreamTheShards) {
  const std::string bin = std::string(AIM_BIN_DIR) + "/aim-data";
  AIM_REQUIRE_DEPENDENCY(std::filesystem::exists(bin), bin);
  t::TempDir d;
  t::write_idx(d / "idx/train-images-idx3-ubyte", d / "idx/train-labels-idx1-ubyte", 20, 6, 6, 4);
  auto [rc, out] = run(bin + " pack --from idx --path " + d / "idx" + " --out " + d / "shards" + " --shard-size 8");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"samples\":20"), std::string::npos) << out;
  EXPECT_NE(out.find("\"shards\":3"), std::string::npos) << out;
  const std::string pattern = d / "shards/{00000000..00000002}.tar";
  std::tie(rc, out) = run(bin + " check '" + pattern + "'");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"samples\":20"), std::string::npos) << out;
  EXPECT_NE(out.find("\"bad\":0"), std::string::npos) << out;

  // The packed set streams back complete and with its labels (shuffled order, lossless PNG).
  LoaderConfig c;
  c.train = false;
  c.img_size = 6;
  c.batch_size = 7;
  c.workers = 2;
  c.augment.eval_crop_pct = 1.0;
  SourceConfig s;
  s.kind = "webdataset";
  s.shards = {pattern};
  c.sources = {s};
  Loader l(c);
  std::multiset<int> seen;
  while (auto b = l.next())
    for (int64_t i = 0; i < b->size(); ++i) {
      int label = static_cast<int>(b->labels[i].item<int64_t>());
      int first_pixel = b->images[i][0][0][0].item<uint8_t>();  // (i * 7) & 255 for item i
      seen.insert(first_pixel);
      EXPECT_EQ(label, (first_pixel / 7) % 4);
    }
  EXPECT_EQ(seen.size(), 20u);

  // Damage: a truncated shard and a bad member are reported, with exit status 1.
  auto shard = d / "shards/00000001.tar";
  std::filesystem::resize_file(shard, std::filesystem::file_size(shard) - 1500);
  std::tie(rc, out) = run(bin + " check '" + pattern + "::" + d / "shards/00000009.tar" + "'");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("DAMAGED " + shard), std::string::npos) << out;
  EXPECT_NE(out.find("MISSING"), std::string::npos) << out;
  std::tie(rc, out) = run(bin + " pack --from image_folder --root " + d / "nothing" + " --out " + d / "x");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("is not a directory"), std::string::npos) << out;
}

// Fails on main: `check` exited 0 on a cut shard, a 0-byte and an all-zero file and a
// member above the size cap, and hung on a base-256 size that seeks backwards.
TEST(DataTool, CheckFailsOnEveryKindOfDamagedShardWithAReason) {
  const std::string bin = std::string(AIM_BIN_DIR) + "/aim-data";
  if (!std::filesystem::exists(bin)) GTEST_SKIP() << bin << " not built";
  t::TempDir d;
  auto intact = [&](const std::string& path, int n) {
    TarWriter w(path);
    for (int k = 0; k < n; ++k) {
      auto png = t::id_png(k);
      w.add("00000000000" + std::to_string(k) + ".png", png.data(), png.size());
      w.add("00000000000" + std::to_string(k) + ".cls", "1");
    }
  };
  intact(d / "good.tar", 3);
  intact(d / "cut.tar", 3);
  std::filesystem::resize_file(d / "cut.tar", std::filesystem::file_size(d / "cut.tar") - 2048);  // at a block boundary
  t::write_bytes(d / "zero.tar", {});
  t::write_bytes(d / "allzero.tar", std::vector<uint8_t>(10240, 0));
  intact(d / "base256.tar", 1);
  std::filesystem::resize_file(d / "base256.tar", std::filesystem::file_size(d / "base256.tar") - 1024);
  t::append_bytes(d / "base256.tar", t::tar_header("000000000009.jpg", t::base256_size({0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
                                                                                       0xFF, 0xFF, 0xFE, 0x00})));
  t::append_bytes(d / "base256.tar", std::vector<uint8_t>(2048, 0));
  {
    cv::Mat noise(1024, 1024, CV_8UC3);
    cv::randu(noise, 0, 255);
    auto png = t::encode(noise, ".png");  // ~3 MB, a valid image above a 1 MB cap
    TarWriter w(d / "oversize.tar");
    w.add("000000000001.png", png.data(), png.size());
    w.add("000000000001.cls", "2");
  }
  const std::string timeout = "timeout 20 ";
  auto [rc, out] = run(timeout + bin + " check " + d / "good.tar" + " --max-member-mb 1");
  EXPECT_EQ(rc, 0) << out;
  const std::vector<std::pair<std::string, std::string>> damaged = {
      {"cut.tar", "truncated tar"}, {"zero.tar", "empty file"}, {"allzero.tar", "no members"},
      {"base256.tar", "size"},      {"oversize.tar", "member too large"}};
  for (const auto& [name, reason] : damaged) {
    std::tie(rc, out) = run(timeout + bin + " check " + d / name + " --max-member-mb 1");
    EXPECT_EQ(rc, 1) << name << ": " << out;
    EXPECT_NE(out.find(reason), std::string::npos) << name << ": " << out;
  }
}

// Re-running pack cannot leave stale shards: a non-empty --out is refused, --replace replaces
// the old pack as a whole (and nothing that is not a shard). Images are decoded while packing,
// so a truncated JPEG is reported by path instead of becoming a bad sample every epoch; with
// --no-verify it is packed, and `check` names the original file it came from.
TEST(DataTool, PackRefusesStaleFoldersVerifiesImagesAndCheckNamesOrigins) {
  const std::string bin = std::string(AIM_BIN_DIR) + "/aim-data";
  AIM_REQUIRE_DEPENDENCY(std::filesystem::exists(bin), bin);
  namespace fs = std::filesystem;
  t::TempDir d;
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 3; ++i)
      t::write_bytes(d / ("photos/c" + std::to_string(c) + "/" + std::to_string(i) + ".jpg"), t::jpeg(40, 36, 3 * c + i));
  auto cut = t::jpeg(64, 64, 9);
  cut.resize(cut.size() / 2);
  const std::string cut_path = d / "photos/c1/cut.jpg";
  t::write_bytes(cut_path, cut);
  const std::string pack = bin + " pack --from image_folder --root " + d / "photos" + " --out " + d / "shards";

  auto [rc, out] = run(pack + " --shard-size 2");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"samples\":6"), std::string::npos) << out;
  EXPECT_NE(out.find("\"skipped\":1"), std::string::npos) << out;
  EXPECT_NE(out.find("pack: skipping " + cut_path + ": truncated jpeg"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(d / "shards/00000002.tar"));
  EXPECT_FALSE(fs::exists(d / "shards.partial"));

  std::tie(rc, out) = run(pack + " --shard-size 10");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("is not empty (3 entries"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(d / "shards/00000002.tar")) << "a refused pack must leave the folder alone";

  std::tie(rc, out) = run(pack + " --shard-size 10 --replace --no-verify");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"samples\":7"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(d / "shards/00000000.tar"));
  EXPECT_FALSE(fs::exists(d / "shards/00000001.tar")) << "a stale shard of the earlier pack survived";

  std::tie(rc, out) = run(bin + " check " + d / "shards/00000000.tar");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("(from " + cut_path + "): truncated jpeg"), std::string::npos) << out;

  t::write_bytes(d / "shards/notes.txt", std::vector<uint8_t>{'h', 'i'});
  std::tie(rc, out) = run(pack + " --replace");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("holds 'notes.txt', which is not a shard"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(d / "shards/notes.txt"));
}
