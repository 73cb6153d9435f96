#pragma once
// Shared by the remote-shard tests (remote_shard_test.cpp, remote_failure_test.cpp): three
// shards of id-coded PNGs, a loader config over them, an ordered eval pass, a log capture.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "aim/data/loader.h"
#include "data_test_util.h"

namespace aim::data::testing::remote {

inline constexpr int kShards = 3, kPerShard = 7;

// Shards 00000000..00000002.tar of id-coded PNGs (id 100 * (s + 1) + k) with labels.
inline void write_shards(const TempDir& d) {
  for (int s = 0; s < kShards; ++s) {
    TarWriter w(d / ("0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < kPerShard; ++k) {
      const std::string key = std::to_string(s) + "_" + std::to_string(1000 + k);
      auto png = id_png(100 * (s + 1) + k);
      w.add(key + ".png", png.data(), png.size());
      w.add(key + ".cls", std::to_string(k % 4));
    }
  }
}

inline bool have_curl() { return std::system("curl --version > /dev/null 2>&1") == 0; }

inline LoaderConfig config(const std::vector<std::string>& shards, bool train) {
  LoaderConfig c;
  SourceConfig s;
  s.name = "remote";
  s.kind = "webdataset";
  s.shards = shards;
  c.sources = {s};
  c.train = train;
  c.img_size = 12;
  c.batch_size = 4;
  c.workers = 2;
  c.stream_lanes = 2;
  c.seed = 5;
  c.augment.eval_crop_pct = 1.0;
  c.remote.backoff_s = 0.01;  // the tests' failures are instant; real ones wait seconds
  return c;
}

inline std::vector<Batch> take(Loader& l, int n) {
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) out.push_back(*l.next());
  return out;
}

inline void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].images, b[i].images)) << what << " batch " << i;
    EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels)) << what << " batch " << i;
    EXPECT_TRUE(torch::equal(a[i].index, b[i].index)) << what << " batch " << i;
  }
}

// (index, sample id) of one ordered eval pass, in delivery order.
inline std::vector<std::pair<int64_t, int>> eval_pass(Loader& l) {
  std::vector<std::pair<int64_t, int>> out;
  while (auto b = l.next())
    for (int64_t i = 0; i < b->size(); ++i)
      out.push_back({b->index[i].item<int64_t>(), id_of(b->images[i].data_ptr<uint8_t>(), 12 * 12)});
  return out;
}

// Collects what spdlog writes while alive.
struct LogCapture {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  LogCapture() {
    spdlog::set_default_logger(
        std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text)));
  }
  ~LogCapture() { spdlog::set_default_logger(previous); }
  std::string str() const { return text.str(); }
};

inline int count_lines(const std::string& path) {
  std::ifstream f(path);
  int n = 0;
  for (std::string line; std::getline(f, line);) ++n;
  return n;
}

}  // namespace aim::data::testing::remote
