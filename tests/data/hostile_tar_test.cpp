// Crafted shards of the kinds two billion downloaded images contain: hostile size fields,
// sizes larger than the file, huge members, cut and empty shards. Each read runs in a child
// process with a timeout, so a crash or a hang fails the test rather than the suite, and the
// child's peak memory shows that nothing was allocated on a header's word.
#include <gtest/gtest.h>

#include <filesystem>

#include "aim/data/loader.h"
#include "aim/data/tar_reader.h"
#include "aim/data/webdataset_source.h"
#include "child_process.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;
namespace fs = std::filesystem;

namespace {

constexpr double kTimeoutS = 20;

// A shard of `n` good samples (id PNG + class), without its end-of-archive blocks, so that
// hostile members can be appended.
void good_prefix(const std::string& path, int n, int first_id = 1) {
  {
    TarWriter w(path);
    for (int k = 0; k < n; ++k) {
      char key[32];
      std::snprintf(key, sizeof key, "%012d", first_id + k);
      auto png = t::id_png(first_id + k);
      w.add(std::string(key) + ".png", png.data(), png.size());
      w.add(std::string(key) + ".cls", std::to_string(k % 3));
    }
  }
  fs::resize_file(path, fs::file_size(path) - 1024);
}

void end_of_archive(const std::string& path) { t::append_bytes(path, std::vector<uint8_t>(1024, 0)); }

struct Scan {
  int samples = 0;
  bool ok = true;
  std::string error;
};

Scan scan_samples(const std::string& path) {
  ShardSampleReader r(path);
  WdsSample s;
  Scan out;
  while (r.next(s, true)) ++out.samples;
  out.ok = r.ok();
  out.error = r.error();
  return out;
}

// Reads every sample in a child; exit 0 when the reader ends with an error containing `needle`
// after exactly `want_samples` samples, 1 otherwise.
t::ChildResult scan_in_child(const std::string& path, int want_samples, const std::string& needle) {
  return t::run_in_child(
      [&] {
        Scan s = scan_samples(path);
        std::fprintf(stderr, "scan of %s: %d samples, error '%s'\n", path.c_str(), s.samples, s.error.c_str());
        return (!s.ok && s.samples == want_samples && s.error.find(needle) != std::string::npos) ? 0 : 1;
      },
      kTimeoutS);
}

LoaderConfig train_config(const std::string& pattern) {
  LoaderConfig c;
  SourceConfig s;
  s.name = "crafted";
  s.kind = "webdataset";
  s.shards = {pattern};
  c.sources = {s};
  c.img_size = 8;
  c.batch_size = 4;
  c.workers = 1;
  c.stream_lanes = 1;
  return c;
}

}  // namespace

// Fails on main: the 88-bit base-256 size 2^64 - 512 became a seek of -513 bytes and the
// reader re-read the same header forever (here: killed after the timeout).
TEST(HostileTar, Base256SizeThatWouldSeekBackwardsEndsTheShard) {
  t::TempDir d;
  const std::string shard = d / "00000000.tar";
  good_prefix(shard, 2);
  t::append_bytes(shard, t::tar_header("000000000009.jpg",
                                       t::base256_size({0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0x00})));
  t::append_bytes(shard, std::vector<uint8_t>(2048, 'x'));
  end_of_archive(shard);
  // The damage leaves the last sample open (was the bad member one of its own?): it is dropped.
  auto r = scan_in_child(shard, 1, "size");
  EXPECT_TRUE(r.ok()) << r.describe();

  // The limit scan of a source and the training loader's lanes read the same way.
  r = t::run_in_child(
      [&] {
        WebDatasetSource src("crafted", {shard}, 100);
        return src.shards().size() == 1 && src.shards()[0].max_samples == 1 ? 0 : 1;
      },
      kTimeoutS);
  EXPECT_TRUE(r.ok()) << "limit scan: " << r.describe();
  r = t::run_in_child(
      [&] {
        Loader l(train_config(shard));
        for (int i = 0; i < 3; ++i) {
          auto b = l.next();
          if (!b || b->size() != 4) return 1;
        }
        return l.bad_samples().by_source().at("crafted") > 0 ? 0 : 1;
      },
      kTimeoutS);
  EXPECT_TRUE(r.ok()) << "loader: " << r.describe();
}

// Fails on main: the high bytes of an 88-bit size were shifted out and the rest accepted.
TEST(HostileTar, SizesBeyondSixtyThreeBitsAreRefused) {
  t::TempDir d;
  const std::string shard = d / "00000000.tar";
  good_prefix(shard, 2);
  t::append_bytes(shard, t::tar_header("000000000009.jpg", t::base256_size({1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16})));
  t::append_bytes(shard, std::vector<uint8_t>(512, 'x'));
  end_of_archive(shard);
  auto r = scan_in_child(shard, 1, "size");
  EXPECT_TRUE(r.ok()) << r.describe();
}

// Fails on main: a 6 KB file whose member declares 2 GiB made the reader allocate (and zero)
// 2 GiB before finding out the bytes are not there.
TEST(HostileTar, DeclaredSizeBeyondTheFileIsRefusedBeforeAllocating) {
  t::TempDir d;
  const std::string shard = d / "00000000.tar";
  good_prefix(shard, 2);
  t::append_bytes(shard, t::tar_header("000000000009.jpg", t::octal_size(2ull << 30)));
  t::append_bytes(shard, std::vector<uint8_t>(1024, 'x'));
  ASSERT_LT(fs::file_size(shard), 8192u);
  auto r = scan_in_child(shard, 1, "truncated tar");
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_LT(r.peak_growth_mb, 100) << "the reader allocated what the header claimed";
}

// Fails on main: std::bad_alloc (declared 2^44 bytes) escaped Loader::next() and ended the run.
TEST(HostileTar, LoaderCountsAHugeDeclaredMemberAndGoesOn) {
  t::TempDir d;
  good_prefix(d / "00000000.tar", 3);
  t::append_bytes(d / "00000000.tar", t::tar_header("000000000009.jpg",
                                                    t::base256_size({0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0})));
  t::append_bytes(d / "00000000.tar", std::vector<uint8_t>(4096, 'x'));
  good_prefix(d / "00000001.tar", 3, 50);
  end_of_archive(d / "00000001.tar");
  auto r = t::run_in_child(
      [&] {
        Loader l(train_config(d / "{00000000..00000001}.tar"));
        for (int i = 0; i < 6; ++i) {
          auto b = l.next();
          if (!b || b->size() != 4) return 1;
        }
        auto reasons = l.bad_samples().by_reason();
        std::fprintf(stderr, "%s\n", l.summary().c_str());
        return reasons["truncated tar"] > 0 ? 0 : 2;
      },
      kTimeoutS);
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_LT(r.peak_growth_mb, 200);
}

// Fails on main: a member that really is 1 GiB (a sparse file here) was read whole into memory.
// Members above the per-member cap (data.max_member_mb, 256 MB by default) are skipped by a
// seek and reported as a bad sample; the samples around it are read.
TEST(HostileTar, MembersAboveTheCapAreSkippedAndReported) {
  t::TempDir d;
  const std::string shard = d / "00000000.tar";
  good_prefix(shard, 1);
  const uint64_t huge = 1ull << 30;
  t::append_bytes(shard, t::tar_header("000000000009.jpg", t::octal_size(huge)));
  fs::resize_file(shard, fs::file_size(shard) + huge);  // sparse: costs no disk
  {
    TarWriter w(d / "tail.tar");
    auto png = t::id_png(77);
    w.add("000000000010.png", png.data(), png.size());
  }
  auto tail = std::vector<uint8_t>(fs::file_size(d / "tail.tar"));
  std::ifstream(d / "tail.tar", std::ios::binary).read(reinterpret_cast<char*>(tail.data()), tail.size());
  t::append_bytes(shard, tail);  // the last sample and the end-of-archive blocks
  auto r = t::run_in_child(
      [&] {
        ShardSampleReader reader(shard);
        WdsSample s;
        std::vector<std::string> keys;
        while (reader.next(s, true)) {
          std::vector<uint8_t>* img = nullptr;
          int64_t label = -1;
          bool has = sample_image(s, &img, &label);
          keys.push_back(s.key + (has ? "+" : "-"));
        }
        std::string all;
        for (auto& k : keys) all += k + " ";
        std::fprintf(stderr, "keys: %s error '%s'\n", all.c_str(), reader.error().c_str());
        // The oversize sample comes back without its image (it is then a bad sample).
        return reader.ok() && all == "000000000001+ 000000000009- 000000000010+ " ? 0 : 1;
      },
      kTimeoutS);
  EXPECT_TRUE(r.ok()) << r.describe();
  EXPECT_LT(r.peak_growth_mb, 100) << "the 1 GiB member was read into memory";
}

// Fails on main: a shard cut at a block boundary read as complete, and its last sample came
// back without its label; 0-byte and all-zero files read as empty, intact shards.
TEST(HostileTar, AShardMustEndWithItsEndOfArchiveBlocks) {
  t::TempDir d;
  // Cut after the last sample's image, before its label: the cut lands on a 512-byte boundary.
  const std::string cut = d / "cut.tar";
  good_prefix(cut, 3);
  const auto full = fs::file_size(cut);
  fs::resize_file(cut, full - 1024);  // drops "…003.cls" (header + one data block)
  Scan s = scan_samples(cut);
  EXPECT_EQ(s.samples, 2) << "the partial last sample must be dropped";
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.error.find("truncated tar"), std::string::npos) << s.error;
  // Complete members but no end-of-archive blocks.
  const std::string no_end = d / "no_end.tar";
  good_prefix(no_end, 3);
  s = scan_samples(no_end);
  EXPECT_EQ(s.samples, 2);
  EXPECT_NE(s.error.find("truncated tar"), std::string::npos) << s.error;
  // One zero block only.
  t::append_bytes(no_end, std::vector<uint8_t>(512, 0));
  s = scan_samples(no_end);
  EXPECT_EQ(s.samples, 2);
  EXPECT_NE(s.error.find("truncated tar"), std::string::npos) << s.error;
  // A 0-byte file and an all-zero file (a failed download) are not shards.
  t::write_bytes(d / "zero.tar", {});
  s = scan_samples(d / "zero.tar");
  EXPECT_EQ(s.samples, 0);
  EXPECT_NE(s.error.find("empty file"), std::string::npos) << s.error;
  t::write_bytes(d / "allzero.tar", std::vector<uint8_t>(10240, 0));
  s = scan_samples(d / "allzero.tar");
  EXPECT_EQ(s.samples, 0);
  EXPECT_NE(s.error.find("no members"), std::string::npos) << s.error;
  // The intact shard, and one written by Python's tarfile (records padded to 10 KiB), are fine.
  end_of_archive(no_end);
  s = scan_samples(no_end);
  EXPECT_TRUE(s.ok) << s.error;
  EXPECT_EQ(s.samples, 3);
  std::string py = std::string(AIM_PYTHON) + " -c \"import tarfile, io\n"
                   "with tarfile.open('" + d / "py.tar" + "', 'w') as t:\n"
                   "    for k in range(3):\n"
                   "        for ext, data in (('jpg', b'x' * 700), ('cls', b'1')):\n"
                   "            i = tarfile.TarInfo('%012d.%s' % (k, ext)); i.size = len(data)\n"
                   "            t.addfile(i, io.BytesIO(data))\"";
  ASSERT_EQ(std::system(py.c_str()), 0) << py;
  s = scan_samples(d / "py.tar");
  EXPECT_TRUE(s.ok) << s.error;
  EXPECT_EQ(s.samples, 3);
}

// Fails on main: eval over a cut shard delivered the partial last sample (label -1).
TEST(HostileTar, EvalDropsThePartialLastSampleOfACutShard) {
  t::TempDir d;
  const std::string shard = d / "00000000.tar";
  good_prefix(shard, 4);
  fs::resize_file(shard, fs::file_size(shard) - 1024);
  auto c = train_config(shard);
  c.train = false;
  Loader l(c);
  int n = 0;
  while (auto b = l.next())
    for (int64_t i = 0; i < b->size(); ++i) {
      EXPECT_GE(b->labels[i].item<int64_t>(), 0) << "a sample without its label";
      ++n;
    }
  EXPECT_EQ(n, 3);
  EXPECT_GT(l.bad_samples().by_reason()["truncated tar"], 0);
}

// data.max_member_mb reaches the loader: a 3 MB image above a 1 MB cap is a counted bad
// sample ("member too large"), the samples around it train.
TEST(HostileTar, LoaderSkipsMembersAboveTheConfiguredCap) {
  t::TempDir d;
  const std::string shard = d / "00000000.tar";
  {
    cv::Mat noise(1024, 1024, CV_8UC3);
    cv::randu(noise, 0, 255);
    auto big = t::encode(noise, ".png");
    ASSERT_GT(big.size(), 2u << 20);
    TarWriter w(shard);
    for (int k = 0; k < 4; ++k) {
      auto png = t::id_png(k + 1);
      w.add("00000000000" + std::to_string(k) + ".png", png.data(), png.size());
    }
    w.add("000000000009.png", big.data(), big.size());
  }
  auto c = train_config(shard);
  c.max_member_bytes = 1u << 20;
  Loader l(c);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(l.next()->size(), 4);
  EXPECT_GT(l.bad_samples().by_reason()["member too large"], 0);
}
