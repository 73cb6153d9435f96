#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "aim/data/loader.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {
// Runs a command, returns (exit status, stdout).
std::pair<int, std::string> run_tool(const std::string& cmd) {
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
  auto [rc, out] = run_tool(bin + " pack --from idx --path " + d / "idx" + " --out " + d / "shards" + " --shard-size 8");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"samples\":20"), std::string::npos) << out;
  EXPECT_NE(out.find("\"shards\":3"), std::string::npos) << out;
  const std::string pattern = d / "shards/{00000000..00000002}.tar";
  std::tie(rc, out) = run_tool(bin + " check '" + pattern + "'");
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
  std::tie(rc, out) = run_tool(bin + " check '" + pattern + "::" + d / "shards/00000009.tar" + "'");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("DAMAGED " + shard), std::string::npos) << out;
  EXPECT_NE(out.find("MISSING"), std::string::npos) << out;
  std::tie(rc, out) = run_tool(bin + " pack --from image_folder --root " + d / "nothing" + " --out " + d / "x");
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
  auto [rc, out] = run_tool(timeout + bin + " check " + d / "good.tar" + " --max-member-mb 1");
  EXPECT_EQ(rc, 0) << out;
  const std::vector<std::pair<std::string, std::string>> damaged = {
      {"cut.tar", "truncated tar"}, {"zero.tar", "empty file"}, {"allzero.tar", "no members"},
      {"base256.tar", "size"},      {"oversize.tar", "member too large"}};
  for (const auto& [name, reason] : damaged) {
    std::tie(rc, out) = run_tool(timeout + bin + " check " + d / name + " --max-member-mb 1");
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

  auto [rc, out] = run_tool(pack + " --shard-size 2");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"samples\":6"), std::string::npos) << out;
  EXPECT_NE(out.find("\"skipped\":1"), std::string::npos) << out;
  EXPECT_NE(out.find("pack: skipping " + cut_path + ": truncated jpeg"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(d / "shards/00000002.tar"));
  EXPECT_FALSE(fs::exists(d / "shards.partial"));
  // Each shard's sample count in open_clip's index, what `limit` reads instead of the shards.
  const auto sizes_of = [&] { std::ifstream in(d / "shards/sizes.json");
    return nlohmann::json::parse(in); };
  EXPECT_EQ(sizes_of(), nlohmann::json::parse(R"({"00000000.tar": 2, "00000001.tar": 2, "00000002.tar": 2})"));

  std::tie(rc, out) = run_tool(pack + " --shard-size 10");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("is not empty (4 entries"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(d / "shards/00000002.tar")) << "a refused pack must leave the folder alone";

  std::tie(rc, out) = run_tool(pack + " --shard-size 10 --replace --no-verify");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"samples\":7"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(d / "shards/00000000.tar"));
  EXPECT_FALSE(fs::exists(d / "shards/00000001.tar")) << "a stale shard of the earlier pack survived";
  EXPECT_EQ(sizes_of(), nlohmann::json::parse(R"({"00000000.tar": 7})"));

  std::tie(rc, out) = run_tool(bin + " check " + d / "shards/00000000.tar");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("(from " + cut_path + "): truncated jpeg"), std::string::npos) << out;

  t::write_bytes(d / "shards/notes.txt", std::vector<uint8_t>{'h', 'i'});
  std::tie(rc, out) = run_tool(pack + " --replace");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("holds 'notes.txt', which is not a shard"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(d / "shards/notes.txt"));
}

// Shards that yield nothing, or less than they hold: on main `check` exited 0 for a tar of
// directories only, a GNU sparse member (skipped unread) and two tars concatenated (only
// the first read), while training lost their samples.
TEST(DataTool, CheckFailsOnEmptySparseAndConcatenatedShards) {
  const std::string bin = std::string(AIM_BIN_DIR) + "/aim-data";
  AIM_REQUIRE_DEPENDENCY(std::filesystem::exists(bin), bin);
  t::TempDir d;
  auto intact = [&](const std::string& path, int first, int n) {
    TarWriter w(path);
    for (int k = first; k < first + n; ++k) {
      auto png = t::id_png(k);
      w.add(std::to_string(1000 + k) + ".png", png.data(), png.size());
    }
  };
  const std::vector<uint8_t> end(1024, 0);
  t::write_bytes(d / "dirs.tar", t::tar_header("a/", t::octal_size(0), '5'));
  t::append_bytes(d / "dirs.tar", t::tar_header("a/b/", t::octal_size(0), '5'));
  t::append_bytes(d / "dirs.tar", end);
  t::write_bytes(d / "sparse.tar", t::tar_header("1000.png", t::octal_size(512), 'S'));
  t::append_bytes(d / "sparse.tar", std::vector<uint8_t>(512, 7));
  t::append_bytes(d / "sparse.tar", end);
  intact(d / "first.tar", 0, 2);
  intact(d / "second.tar", 2, 3);
  {
    std::ifstream a(d / "first.tar", std::ios::binary), b(d / "second.tar", std::ios::binary);
    std::ofstream out(d / "both.tar", std::ios::binary);
    out << a.rdbuf() << b.rdbuf();
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dirs.tar", "EMPTY"},
      {"sparse.tar", "a GNU sparse file"},
      {"both.tar", "data after the end-of-archive blocks"}};
  for (const auto& [name, says] : cases) {
    auto [rc, out] = run_tool("timeout 20 " + bin + " check " + d / name);
    EXPECT_EQ(rc, 1) << name << ": " << out;
    EXPECT_NE(out.find(says), std::string::npos) << name << ": " << out;
  }
  // The first tar's samples are still read, and counted.
  auto [rc, out] = run_tool("timeout 20 " + bin + " check --no-decode " + d / "both.tar");
  EXPECT_NE(out.find("\"samples\":2"), std::string::npos) << out;
}

// The repro of the issue: a file named like a command beside real shards, found by a glob.
TEST(DataTool, CheckReadsAGlobFoundFileNamedLikeACommandAsAFile) {
  const std::string bin = std::string(AIM_BIN_DIR) + "/aim-data";
  AIM_REQUIRE_DEPENDENCY(std::filesystem::exists(bin), bin);
  t::TempDir d;
  for (const std::string name : {"00000005.tar", "pipe:touch INJECTED; cat 00000005.tar;.tar"}) {
    TarWriter w(d / name);
    auto png = t::id_png(1);
    w.add("1000.png", png.data(), png.size());
  }
  auto [rc, out] = run_tool("cd " + d.path.string() + " && timeout 20 " + bin + " check '*.tar'");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("\"samples\":2"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(d / "INJECTED")) << "a file name ran as a command";
}

// Errors stay on the screen: the usage text follows only a mistake in how the tool was called.
TEST(DataTool, UsageOnlyForUsageErrors) {
  const std::string bin = std::string(AIM_BIN_DIR) + "/aim-data";
  AIM_REQUIRE_DEPENDENCY(std::filesystem::exists(bin), bin);
  t::TempDir d;
  auto [rc, out] = run_tool(bin + " pack --from image_folder --root " + d / "missing" + " --out " + d / "o");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("is not a directory"), std::string::npos) << out;
  EXPECT_EQ(out.find("usage:"), std::string::npos) << out;
  std::tie(rc, out) = run_tool(bin + " frobnicate");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("unknown command 'frobnicate'"), std::string::npos) << out;
  EXPECT_NE(out.find("usage:"), std::string::npos) << out;
  std::tie(rc, out) = run_tool(bin + " pack --from image_folder --root " + d.path.string());
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("--out is required"), std::string::npos) << out;
  EXPECT_NE(out.find("usage:"), std::string::npos) << out;
}

// On main `check` read remote shards without a timeout: a stalled URL never ended, and its
// curl stayed behind. It has training's timeouts now, and ends its commands.
TEST(DataTool, CheckTimesOutOnAStalledShardAndEndsItsCommand) {
  const std::string bin = std::string(AIM_BIN_DIR) + "/aim-data";
  AIM_REQUIRE_DEPENDENCY(std::filesystem::exists(bin), bin);
  const auto t0 = std::chrono::steady_clock::now();
  auto [rc, out] = run_tool("timeout 60 " + bin + " check 'pipe:sleep 44.2 | cat' --shard-timeout-s 1");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("no data for 1 s (data.shard_timeout_s)"), std::string::npos) << out;
  EXPECT_LT(s, 10.0) << out;
  EXPECT_NE(std::system("pgrep -f '^sleep 44.2$' > /dev/null"), 0) << "the shard's command was left running";
  std::system("pkill -KILL -f '^sleep 44.2$'");
}
