// Eval passes over webdataset shards on more ranks than shards: a rank that owns no shard
// contributes nothing (and does not crash), and a limited pass holds the same images, each
// once and under the same index, whatever the world size.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "aim/data/loader.h"
#include "child_process.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {

// Shards of id-coded PNGs: shard s holds counts[s] samples with ids 100 * (s + 1) + k.
std::string write_eval_shards(const t::TempDir& d, const std::vector<int>& counts) {
  for (size_t s = 0; s < counts.size(); ++s) {
    TarWriter w(d / ("0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < counts[s]; ++k) {
      char key[32];
      std::snprintf(key, sizeof key, "%06zu%06d", s, k);
      auto png = t::id_png(static_cast<int>(100 * (s + 1) + k));
      w.add(std::string(key) + ".png", png.data(), png.size());
      w.add(std::string(key) + ".cls", std::to_string(k % 5));
    }
  }
  return d / ("{00000000..0000000" + std::to_string(counts.size() - 1) + "}.tar");
}

LoaderConfig eval_config(const std::string& pattern, int rank, int world, int64_t limit = -1) {
  LoaderConfig c;
  SourceConfig s;
  s.name = "val";
  s.kind = "webdataset";
  s.shards = {pattern};
  s.limit = limit;
  c.sources = {s};
  c.train = false;
  c.img_size = 12;
  c.batch_size = 3;
  c.workers = 2;
  c.rank = rank;
  c.world_size = world;
  c.augment.eval_crop_pct = 1.0;
  return c;
}

// (index, sample id) of everything every rank delivers.
std::multiset<std::pair<int64_t, int>> pass(const std::string& pattern, int world, int64_t limit) {
  std::multiset<std::pair<int64_t, int>> out;
  for (int r = 0; r < world; ++r) {
    Loader l(eval_config(pattern, r, world, limit));
    while (auto b = l.next())
      for (int64_t i = 0; i < b->size(); ++i)
        out.insert({b->index[i].item<int64_t>(), t::id_of(b->images[i].data_ptr<uint8_t>(), 12 * 12)});
  }
  return out;
}

}  // namespace

// Fails on main: rank 1 of 2 owns none of the single shard, reset_to cleared the source's
// exhausted flag and the loader planned a slot on a lane that does not exist (SIGSEGV).
TEST(StreamEval, ARankWithoutShardsEndsItsPassEmpty) {
  t::TempDir d;
  const std::string pattern = write_eval_shards(d, {7});
  auto r = t::run_in_child(
      [&] {
        Loader l(eval_config(pattern, 1, 2));
        if (l.next().has_value()) return 1;
        l.load_state(l.state());  // a rewind keeps it empty
        return l.next().has_value() ? 2 : 0;
      },
      20);
  EXPECT_TRUE(r.ok()) << r.describe();
}

// Fails on main: each rank read its own shards with no common position, so a limited pass
// (validation's first N images) held different images on different world sizes.
TEST(StreamEval, LimitedPassIsTheSameOnAnyWorldSize) {
  t::TempDir d;
  const std::string pattern = write_eval_shards(d, {5, 4, 6, 3});
  for (int64_t limit : {int64_t{-1}, int64_t{11}, int64_t{5}, int64_t{2}}) {
    auto one = pass(pattern, 1, limit);
    const size_t want = limit < 0 ? 18 : static_cast<size_t>(limit);
    ASSERT_EQ(one.size(), want) << "limit " << limit;
    std::set<int64_t> keys;
    std::set<int> ids;
    for (auto& [index, id] : one) {
      keys.insert(index);
      ids.insert(id);
    }
    EXPECT_EQ(keys.size(), want) << "indices must be unique";
    EXPECT_EQ(ids.size(), want) << "each image once";
    for (int world : {2, 3, 5}) EXPECT_EQ(pass(pattern, world, limit), one) << "world " << world << " limit " << limit;
  }
  // The limit takes the first samples in list order: 5 from the first shard, then 4, then 2.
  std::set<int> ids;
  for (auto& [index, id] : pass(pattern, 3, 11)) ids.insert(id);
  std::set<int> want = {100, 101, 102, 103, 104, 200, 201, 202, 203, 300, 301};
  EXPECT_EQ(ids, want);
}
