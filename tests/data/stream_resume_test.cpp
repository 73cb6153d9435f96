// Resuming streams on another world size. A run that goes 3 -> 2 -> 4 ranks (with a
// different micro-batch split and accumulation on each) through merged loader states must
// give every global sample index the very sample, source and augmentation of the
// uninterrupted 3-rank run: a mixture of a webdataset source (12 shards of uneven length,
// read by several lanes and workers, past an epoch) and a random-access one. A position that
// cannot be continued is an error on an unchanged world size and a warning on a changed one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "aim/data/loader.h"
#include "aim/data/loader_state.h"
#include "aim/data/tar_reader.h"
#include "aim/error.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {

struct Shards {
  t::TempDir dir;
  std::string pattern;
  int samples = 0;
  Shards() {
    std::filesystem::create_directories(dir / "wds");
    for (int s = 0; s < 12; ++s) {
      char name[32];
      std::snprintf(name, sizeof name, "wds/%06d.tar", s);
      TarWriter w(dir / name);
      for (int k = 0; k < 3 + (s * 5) % 6; ++k) {  // 3..8 samples
        const auto png = t::id_png(1000 + s * 16 + k);
        const std::string key = std::to_string(s * 100 + k);
        w.add(key + ".png", png.data(), png.size());
        w.add(key + ".cls", std::to_string(s));
        ++samples;
      }
    }
    pattern = dir / "wds/{000000..000011}.tar";
  }
};

Shards& resume_shards() {
  static Shards s;
  return s;
}

LoaderConfig layout(int rank, int world, int64_t batch, int64_t accumulation) {
  LoaderConfig c;
  c.img_size = 8;
  c.workers = 2;
  c.seed = 11;
  c.augment.color_jitter = 0;  // the id colour survives crops and flips
  c.stream_lanes = 4;
  c.rank = rank;
  c.world_size = world;
  c.batch_size = batch;
  c.accumulation = accumulation;
  SourceConfig w;
  w.name = "stream";
  w.kind = "webdataset";
  w.shards = {resume_shards().pattern};
  w.weight = 0.7;
  SourceConfig r;
  r.name = "synth";
  r.kind = "synthetic";
  r.size = 40;
  r.height = r.width = 12;
  r.weight = 0.3;
  c.sources = {w, r};
  return c;
}

struct Seen {
  int64_t source = -1, label = -1;
  torch::Tensor image;
};

// Runs `steps` optimizer steps on every rank of a layout, recording each global index's sample.
void run_steps(std::vector<std::unique_ptr<Loader>>& ranks, int64_t steps, int64_t accumulation,
               std::map<int64_t, Seen>& seen) {
  for (int64_t s = 0; s < steps * accumulation; ++s)
    for (auto& l : ranks) {
      const Batch b = *l->next();
      for (int64_t i = 0; i < b.size(); ++i) {
        const int64_t g = b.index[i].item<int64_t>();
        ASSERT_EQ(seen.count(g), 0u) << "global sample " << g << " delivered twice";
        seen[g] = {b.source[i].item<int64_t>(), b.labels[i].item<int64_t>(), b.images[i].clone()};
      }
    }
}

std::vector<std::unique_ptr<Loader>> make_ranks(int world, int64_t batch, int64_t accumulation) {
  std::vector<std::unique_ptr<Loader>> out;
  for (int r = 0; r < world; ++r) out.push_back(std::make_unique<Loader>(layout(r, world, batch, accumulation)));
  return out;
}

LoaderState merged(const std::vector<std::unique_ptr<Loader>>& ranks) {
  std::vector<LoaderState> states;
  for (const auto& l : ranks) states.push_back(nlohmann::json(l->state()).get<LoaderState>());  // through JSON, as saved
  return merge_loader_states(states);
}

TEST(StreamResume, ThreeToTwoToFourRanksSeeTheUninterruptedRunsSamples) {
  // Global batch 24 throughout: 3 ranks x 4 x 2 micro-batches, then 2 x 4 x 3, then 4 x 6 x 1.
  std::map<int64_t, Seen> straight, resumed;
  auto three = make_ranks(3, 4, 2);
  run_steps(three, 9, 2, straight);

  auto first = make_ranks(3, 4, 2);
  run_steps(first, 3, 2, resumed);
  auto state = merged(first);
  EXPECT_EQ(state.units[0], 12) << "3 ranks x 4 lanes";
  EXPECT_EQ(state.lanes[0].size(), 12u);
  auto two = make_ranks(2, 4, 3);
  for (auto& l : two) l->load_state(state);
  run_steps(two, 3, 3, resumed);
  state = merged(two);
  auto four = make_ranks(4, 6, 1);
  for (auto& l : four) l->load_state(state);
  run_steps(four, 3, 1, resumed);

  ASSERT_EQ(straight.size(), 9u * 24);
  ASSERT_EQ(resumed.size(), straight.size());
  int streamed = 0;
  std::map<int, int> times_straight, times_resumed;  // stream sample id -> how often seen
  for (const auto& [g, a] : straight) {
    const Seen& b = resumed.at(g);
    EXPECT_EQ(a.source, b.source) << "g " << g;
    EXPECT_EQ(a.label, b.label) << "g " << g;
    EXPECT_TRUE(torch::equal(a.image, b.image)) << "g " << g;
    if (a.source == 0) {
      ++streamed;
      ++times_straight[t::id_of(a.image.data_ptr<uint8_t>(), 64)];
      ++times_resumed[t::id_of(b.image.data_ptr<uint8_t>(), 64)];
    }
  }
  EXPECT_EQ(times_straight, times_resumed);
  EXPECT_GT(streamed, 2 * resume_shards().samples) << "the test should run the stream past an epoch";
}

TEST(StreamResume, ALostStreamPositionIsAnErrorUnlessTheWorldSizeChanged) {
  auto two = make_ranks(2, 4, 3);
  std::map<int64_t, Seen> seen;
  run_steps(two, 1, 3, seen);
  // Rank 0's own position given to rank 1 of the same layout: its lanes are not rank 1's.
  Loader other(layout(1, 2, 4, 3));
  try {
    other.load_state(two[0]->state());
    ADD_FAILURE() << "rank 1 took rank 0's stream position";
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0's stream position"), std::string::npos) << e.what();
  }
  // A merged state missing a rank's lanes, on the same world size: an error, not a restart.
  auto broken = merged(two);
  broken.lanes[0].pop_back();
  try {
    other.check_state(broken);
    ADD_FAILURE() << "a stream position was silently lost";
  } catch (const aim::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be continued"), std::string::npos) << e.what();
  }
  // 3 ranks do not divide the 2 x 4 = 8 lanes: on them the stream restarts at a fresh epoch
  // (the world size changed), and the random-access source continues where it was.
  Loader three(layout(0, 3, 4, 2));
  EXPECT_NO_THROW(three.load_state(merged(two)));
  EXPECT_EQ(three.state().step, 2) << "one optimizer step of 24 samples = 2 micro-batches of 3 x 4";
  // Ranks that disagree cannot be merged.
  std::vector<LoaderState> states = {two[0]->state(), two[1]->state()};
  states[1].step += 1;
  EXPECT_THROW(merge_loader_states(states), aim::Error);
}

}  // namespace
