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
