// A source that yields nothing good stops the run after max_bad_streak bad samples in a row,
// streaming or random access alike, with an error naming the source; a source with the odd
// bad sample never does.
#include <gtest/gtest.h>

#include "aim/data/loader.h"
#include "aim/error.h"
#include "child_process.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {

constexpr int kDefaultStreak = 64;

LoaderConfig streak_config(const std::vector<SourceConfig>& sources) {
  LoaderConfig c;
  c.sources = sources;
  c.img_size = 8;
  c.batch_size = 4;
  c.workers = 2;
  c.stream_lanes = 2;
  return c;
}

SourceConfig shards(const std::string& name, const std::string& pattern) {
  SourceConfig s;
  s.name = name;
  s.kind = "webdataset";
  s.shards = {pattern};
  return s;
}

// Runs the loader until it throws; returns the error and how many bad samples it had logged.
std::pair<std::string, int64_t> run_until_error(const LoaderConfig& c, int max_batches) {
  Loader l(c);
  try {
    for (int i = 0; i < max_batches; ++i) l.next();
  } catch (const aim::Error& e) {
    return {e.what(), l.bad_samples().total()};
  }
  return {"", l.bad_samples().total()};
}

}  // namespace

// Fails on main: two shards of 100 corrupt JPEGs stopped only after 64 full epochs per lane
// (12800 bad samples), not after a streak of 64.
TEST(BadStreak, AnAllBadStreamingSourceStopsAfterTheStreak) {
  t::TempDir d;
  auto j = t::jpeg(32, 32);
  for (int s = 0; s < 2; ++s) {
    TarWriter w(d / ("0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < 100; ++k) w.add(std::to_string(s) + "_" + std::to_string(1000 + k) + ".jpg", j.data(), j.size() / 2);
  }
  auto [error, bad] = run_until_error(streak_config({shards("broken", d / "{00000000..00000001}.tar")}), 1000);
  EXPECT_NE(error.find("source 'broken'"), std::string::npos) << error;
  EXPECT_NE(error.find(std::to_string(kDefaultStreak) + " bad samples in a row"), std::string::npos) << error;
  EXPECT_NE(error.find("truncated jpeg"), std::string::npos) << "names the last bad sample's reason: " << error;
  EXPECT_GE(bad, kDefaultStreak);
  EXPECT_LE(bad, 2 * kDefaultStreak) << "kept reading long after the streak";
}

// Fails on main: shards that hold no sample at all (0 bytes, all zeros) were retried for 64
// epochs; each is one bad item of the streak now.
TEST(BadStreak, ShardsWithoutSamplesCountTowardsTheStreak) {
  t::TempDir d;
  t::write_bytes(d / "00000000.tar", {});
  t::write_bytes(d / "00000001.tar", std::vector<uint8_t>(10240, 0));
  auto r = t::run_in_child(
      [&] {
        auto [error, bad] = run_until_error(streak_config({shards("empty", d / "{00000000..00000001}.tar")}), 10);
        std::fprintf(stderr, "error: %s (bad %lld)\n", error.c_str(), static_cast<long long>(bad));
        bool counted = bad >= kDefaultStreak && bad <= 2 * kDefaultStreak;
        return error.find("source 'empty'") != std::string::npos && counted ? 0 : 1;
      },
      20);
  EXPECT_TRUE(r.ok()) << r.describe();
}

TEST(BadStreak, RandomAccessSourcesStopAlike) {
  t::TempDir d;
  auto j = t::jpeg(32, 32);
  for (int k = 0; k < 10; ++k) t::write_bytes(d / ("folder/a/" + std::to_string(k) + ".jpg"), std::vector<uint8_t>(j.begin(), j.begin() + j.size() / 2));
  SourceConfig f;
  f.name = "rotten";
  f.kind = "image_folder";
  f.root = d / "folder";
  auto [error, bad] = run_until_error(streak_config({f}), 10);
  EXPECT_NE(error.find("source 'rotten'"), std::string::npos) << error;
  EXPECT_NE(error.find(std::to_string(kDefaultStreak) + " bad samples in a row"), std::string::npos) << error;
}

// One bad sample in every few is reported and skipped, and the run goes on.
TEST(BadStreak, ScatteredBadSamplesNeverStopTheRun) {
  t::TempDir d;
  auto j = t::jpeg(32, 32);
  {
    TarWriter w(d / "00000000.tar");
    for (int k = 0; k < 40; ++k) {
      auto key = std::to_string(100000 + k);
      if (k % 3 == 0)
        w.add(key + ".jpg", j.data(), j.size() / 2);
      else
        w.add(key + ".jpg", j.data(), j.size());
    }
  }
  auto c = streak_config({shards("mixed", d / "00000000.tar")});
  auto [error, bad] = run_until_error(c, 60);
  EXPECT_EQ(error, "");
  EXPECT_GT(bad, 20);
}

// data.max_bad_streak sets the streak, for both kinds of source.
TEST(BadStreak, TheStreakIsConfigurable) {
  t::TempDir d;
  auto j = t::jpeg(32, 32);
  {
    TarWriter w(d / "00000000.tar");
    for (int k = 0; k < 30; ++k) w.add(std::to_string(1000 + k) + ".jpg", j.data(), j.size() / 2);
  }
  for (int k = 0; k < 3; ++k) t::write_bytes(d / ("folder/a/" + std::to_string(k) + ".jpg"), {1, 2, 3});
  SourceConfig f;
  f.name = "rotten";
  f.kind = "image_folder";
  f.root = d / "folder";
  for (const auto& source : {shards("broken", d / "00000000.tar"), f}) {
    auto c = streak_config({source});
    c.stream_lanes = 1;
    c.max_bad_streak = 5;
    auto [error, bad] = run_until_error(c, 10);
    EXPECT_NE(error.find("source '" + source.name + "': 5 bad samples in a row"), std::string::npos) << error;
    EXPECT_GE(bad, 5);
    EXPECT_LE(bad, 3 * 5) << source.name << ": each of the 2 workers may be in a streak of its own";
  }
}
