#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>
#include <torch/torch.h>

#include <map>
#include <set>

#include "aim/data/loader.h"
#include "aim/error.h"
#include "data_test_util.h"

using namespace aim::data;
namespace t = aim::data::testing;

namespace {

// Shared fixture files, built once: an ImageFolder of JPEGs, webdataset shards with uneven
// counts whose images encode their sample id, and a small IDX set.
struct Files {
  t::TempDir dir;
  std::string folder, shards, idx;
  int wds_samples = 0;
  Files() {
    folder = dir / "folder";
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 6; ++i)
        t::write_bytes(folder + "/class" + std::to_string(c) + "/" + std::to_string(i) + ".jpg",
                       t::jpeg(40 + 7 * i, 36 + 5 * c, c * 10 + i));
    const int counts[] = {7, 3, 9, 5, 6};
    std::filesystem::create_directories(dir / "wds");
    for (int s = 0; s < 5; ++s) {
      TarWriter w(dir / ("wds/0000000" + std::to_string(s) + ".tar"));
      for (int k = 0; k < counts[s]; ++k) {
        int id = 100 + s * 20 + k;
        std::string key = "0000" + std::to_string(s) + "00000" + (k < 10 ? "0" : "") + std::to_string(k);
        auto png = t::id_png(id);
        w.add(key + ".png", png.data(), png.size());
        w.add(key + ".txt", "a caption");
        w.add(key + ".json", "{\"key\": \"" + key + "\"}");
        ++wds_samples;
      }
    }
    shards = dir / "wds/{00000000..00000004}.tar";
    idx = dir / "idx";
    t::write_idx(idx + "/train-images-idx3-ubyte", idx + "/train-labels-idx1-ubyte", 50, 12, 12, 10);
  }
};

Files& files() {
  std::filesystem::create_directories("/tmp");
  static Files f;
  return f;
}

LoaderConfig base_loader(int workers = 2) {
  LoaderConfig c;
  c.img_size = 16;
  c.batch_size = 8;
  c.workers = workers;
  c.seed = 5;
  c.augment.color_jitter = 0.5;
  return c;
}

SourceConfig wds(double w = 1.0) {
  SourceConfig s;
  s.name = "dfn";
  s.kind = "webdataset";
  s.shards = {files().shards};
  s.weight = w;
  return s;
}
SourceConfig folder(double w = 1.0) {
  SourceConfig s;
  s.name = "inet";
  s.kind = "image_folder";
  s.root = files().folder;
  s.weight = w;
  return s;
}
SourceConfig idx(double w = 1.0) {
  SourceConfig s;
  s.name = "fmnist";
  s.kind = "idx";
  s.path = files().idx;
  s.weight = w;
  return s;
}
SourceConfig synth(double w = 1.0) {
  SourceConfig s;
  s.name = "synth";
  s.kind = "synthetic";
  s.size = 40;
  s.height = 20;
  s.width = 24;
  s.weight = w;
  return s;
}

std::vector<Batch> take_batches(Loader& l, int n) {
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) out.push_back(*l.next());
  return out;
}

void expect_same_batches(const Batch& a, const Batch& b, const std::string& what) {
  EXPECT_TRUE(torch::equal(a.images, b.images)) << what;
  EXPECT_TRUE(torch::equal(a.labels, b.labels)) << what;
  EXPECT_TRUE(torch::equal(a.source, b.source)) << what;
  EXPECT_TRUE(torch::equal(a.index, b.index)) << what;
}

Batch cat(const std::vector<Batch>& parts) {
  std::vector<torch::Tensor> im, lb, sr, ix;
  for (const auto& p : parts) {
    im.push_back(p.images);
    lb.push_back(p.labels);
    sr.push_back(p.source);
    ix.push_back(p.index);
  }
  Batch b;
  b.images = torch::cat(im);
  b.labels = torch::cat(lb);
  b.source = torch::cat(sr);
  b.index = torch::cat(ix);
  return b;
}

}  // namespace

TEST(DataLoader, BatchesHaveTheContractedShapesAndTypes) {
  auto c = base_loader();
  c.sources = {wds(0.5), folder(0.3), idx(0.2)};
  Loader l(c);
  Batch b = *l.next();
  EXPECT_EQ(b.images.sizes(), (std::vector<int64_t>{8, 3, 16, 16}));
  EXPECT_EQ(b.images.dtype(), torch::kUInt8);
  EXPECT_TRUE(b.images.is_contiguous());
  EXPECT_EQ(b.labels.dtype(), torch::kInt64);
  EXPECT_EQ(b.source.dtype(), torch::kInt64);
  for (int i = 0; i < 8; ++i) {
    int64_t s = b.source[i].item<int64_t>(), y = b.labels[i].item<int64_t>();
    if (s == 0) {
      EXPECT_EQ(y, -1);  // captions only: unlabeled
    } else if (s == 1) {
      EXPECT_TRUE(y >= 0 && y < 3);
    } else {
      EXPECT_TRUE(y >= 0 && y < 10);
    }
    EXPECT_EQ(b.index[i].item<int64_t>(), i);
  }
  auto x = normalize_images(b.images, torch::kCPU);
  EXPECT_EQ(x.dtype(), torch::kFloat);
  float expect = (b.images[0][1][2][3].item<uint8_t>() / 255.0f - 0.456f) / 0.224f;
  EXPECT_NEAR(x[0][1][2][3].item<float>(), expect, 1e-5);
}

TEST(DataLoader, ResumeReplaysExactlyTheSameBatches) {
  auto c = base_loader(2);
  c.sources = {wds(0.5), folder(0.3), synth(0.2)};
  c.stream_lanes = 3;
  std::vector<Batch> ref;
  nlohmann::json saved;
  {
    Loader l(c);
    auto first = take_batches(l, 4);
    saved = l.state();  // position after 4 batches; the loader has prefetched beyond it
    auto rest = take_batches(l, 8);
    ref = rest;
  }
  // 12 batches x ~4 streaming samples walk through more than one epoch of the 30 shards' samples.
  LoaderState st = nlohmann::json::parse(saved.dump()).get<LoaderState>();
  for (int workers : {0, 3}) {
    auto c2 = c;
    c2.workers = workers;
    Loader resumed(c2);
    resumed.load_state(st);
    auto got = take_batches(resumed, 8);
    for (int i = 0; i < 8; ++i) expect_same_batches(ref[i], got[i], "batch " + std::to_string(4 + i) + " workers " + std::to_string(workers));
  }
  // Restoring mid-run (with work in flight) behaves the same.
  Loader again(c);
  take_batches(again, 7);
  again.load_state(st);
  expect_same_batches(ref[0], *again.next(), "load_state on a running loader");
}

TEST(DataLoader, WorkerCountDoesNotChangeBatches) {
  auto c = base_loader(0);
  c.sources = {wds(0.4), folder(0.3), idx(0.3)};
  c.stream_lanes = 2;
  Loader a(c);
  c.workers = 4;
  c.prefetch = 5;
  Loader b(c);
  for (int i = 0; i < 6; ++i) expect_same_batches(*a.next(), *b.next(), "batch " + std::to_string(i));
}

TEST(DataLoader, GlobalBatchIsWorldSizeAndAccumulationInvariant) {
  auto c = base_loader(1);
  c.sources = {folder(0.5), idx(0.3), synth(0.2)};
  c.batch_size = 12;
  Loader single(c);
  auto ref = take_batches(single, 5);  // 60 samples: several epochs of the 18-image folder
  for (int world : {2, 3, 4}) {
    std::vector<std::unique_ptr<Loader>> ranks;
    for (int r = 0; r < world; ++r) {
      auto cr = c;
      cr.world_size = world;
      cr.rank = r;
      cr.batch_size = 12 / world;
      ranks.push_back(std::make_unique<Loader>(cr));
    }
    for (int step = 0; step < 5; ++step) {
      std::vector<Batch> parts;
      for (auto& r : ranks) parts.push_back(*r->next());
      expect_same_batches(ref[step], cat(parts), "world " + std::to_string(world) + " step " + std::to_string(step));
    }
  }
  // Gradient accumulation: micro-batches of 4 on one rank, three per optimizer step.
  auto cm = c;
  cm.batch_size = 4;
  Loader micro(cm);
  for (int step = 0; step < 5; ++step) expect_same_batches(ref[step], cat(take_batches(micro, 3)), "accumulation");
  // A checkpoint from the single-rank run resumes on two ranks.
  Loader one(c);
  take_batches(one, 2);
  LoaderState st = one.state();
  std::vector<Batch> parts;
  for (int r = 0; r < 2; ++r) {
    auto cr = c;
    cr.world_size = 2;
    cr.rank = r;
    cr.batch_size = 6;
    Loader l(cr);
    l.load_state(st);
    parts.push_back(*l.next());
  }
  expect_same_batches(ref[2], cat(parts), "resume on another world size");
}

TEST(DataLoader, EpochsVisitEveryRandomAccessItemOnce) {
  auto c = base_loader(2);
  c.sources = {idx()};
  c.batch_size = 10;
  c.augment = AugmentConfig{};
  c.augment.scale_min = c.augment.scale_max = 1.0;
  c.augment.ratio_min = c.augment.ratio_max = 1.0;
  c.augment.hflip = 0;
  c.img_size = 12;  // whole 12x12 image, unchanged: pixel (0,0) = (i*7) & 255 identifies item i
  Loader l(c);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<int> seen;
    for (int b = 0; b < 5; ++b) {
      Batch x = *l.next();
      for (int i = 0; i < 10; ++i) seen.insert(x.labels[i].item<int64_t>() * 1000 + x.images[i][0][0][0].item<uint8_t>());
    }
    std::multiset<int> want;
    for (int i = 0; i < 50; ++i) want.insert((i % 10) * 1000 + ((i * 7) & 255));
    EXPECT_EQ(seen, want) << "epoch " << epoch;
  }
}

TEST(DataLoader, StreamsSplitShardsAcrossRanksWithoutOverlap) {
  auto c = base_loader(2);
  c.sources = {wds()};
  c.augment.color_jitter = 0;
  c.stream_lanes = 1;
  c.batch_size = 4;
  c.world_size = 2;
  std::vector<std::set<int>> ids(2);
  for (int r = 0; r < 2; ++r) {
    c.rank = r;
    Loader l(c);
    // Rank 1 owns 2 of the 5 shards (at least 3 + 5 samples), rank 0 owns 3 (at least 14).
    for (int b = 0; b < 2; ++b) {
      Batch x = *l.next();
      for (int i = 0; i < 4; ++i) {
        int id = t::id_of(x.images[i].data_ptr<uint8_t>(), 16 * 16);
        EXPECT_TRUE(ids[r].insert(id).second) << "rank " << r << " saw sample " << id << " twice";
        EXPECT_GE(id, 100);
      }
    }
  }
  for (int id : ids[0]) EXPECT_EQ(ids[1].count(id), 0u) << id;
  // Same world size and seed: the same stream again.
  c.rank = 0;
  Loader a(c), b(c);
  for (int i = 0; i < 8; ++i) expect_same_batches(*a.next(), *b.next(), "stream determinism");
}

TEST(DataLoader, EvalIsOneOrderedPassSplitAcrossRanks) {
  auto c = base_loader(2);
  c.train = false;
  c.sources = {folder(), idx()};
  c.batch_size = 5;
  c.world_size = 2;
  std::multiset<int64_t> all;
  for (int r = 0; r < 2; ++r) {
    c.rank = r;
    Loader l(c);
    int64_t last = -1;
    while (auto b = l.next()) {
      for (int64_t i = 0; i < b->size(); ++i) {
        int64_t g = b->index[i].item<int64_t>();
        EXPECT_GT(g, last);
        last = g;
        all.insert(g);
      }
    }
    EXPECT_FALSE(l.next().has_value());
    Loader again(c);
    expect_same_batches(*Loader(c).next(), *again.next(), "eval is deterministic");
  }
  std::multiset<int64_t> want;
  for (int64_t g = 0; g < 18 + 50; ++g) want.insert(g);
  EXPECT_EQ(all, want);
  // Eval over shards: every sample of every shard once.
  c.sources = {wds()};
  c.world_size = 1;
  c.rank = 0;
  Loader l(c);
  int n = 0;
  while (auto b = l.next()) n += b->size();
  EXPECT_EQ(n, files().wds_samples);
}

TEST(DataLoader, MixtureRatioAndLimit) {
  auto c = base_loader(2);
  c.img_size = 8;
  c.batch_size = 64;
  c.augment.color_jitter = 0;
  auto lim = idx(0.2);
  lim.limit = 3;  // first three items: labels 0, 1, 2
  c.sources = {synth(0.8), lim};
  Loader l(c);
  std::set<int64_t> labels;
  for (int i = 0; i < 40; ++i) {
    Batch b = *l.next();
    for (int k = 0; k < 64; ++k)
      if (b.source[k].item<int64_t>() == 1) labels.insert(b.labels[k].item<int64_t>());
  }
  auto counts = l.source_counts();
  EXPECT_EQ(counts[0] + counts[1], 40 * 64);
  EXPECT_NEAR(counts[0] / double(40 * 64), 0.8, 0.03);
  EXPECT_EQ(labels, (std::set<int64_t>{0, 1, 2}));
  char pct[32];
  std::snprintf(pct, sizeof pct, "synth %.1f%% (%lld)", 100.0 * counts[0] / (40 * 64), static_cast<long long>(counts[0]));
  EXPECT_NE(l.summary().find(pct), std::string::npos) << l.summary();
  EXPECT_NE(l.summary().find("bad samples skipped: 0"), std::string::npos) << l.summary();
  EXPECT_EQ(l.state().delivered, counts);
}

// Shard 0: two good samples (ids 1, 2), five bad ones of different kinds, and two odd but
// valid images (16-bit, RGBA). Shard 1: ids 50..53 with the archive cut inside id 53.
void write_hostile_shards(const t::TempDir& d) {
  {
    TarWriter w(d / "00000000.tar");
    int id = 0;
    auto good = [&](const std::string& key) {
      auto p = t::id_png(++id);
      w.add(key + ".png", p.data(), p.size());
      w.add(key + ".txt", "ok");
    };
    good("000000000000");
    auto j = t::jpeg(64, 64);
    w.add("000000000001.jpg", j.data(), j.size() / 2);             // truncated JPEG
    w.add("000000000002.jpg", "", 0);                              // zero-byte member
    w.add("000000000003.jpg", "<html>Access denied</html>");       // not an image
    w.add("000000000004.txt", "caption without image");            // no image member
    auto bomb = t::png_with_dims(90000, 90000);
    w.add("000000000005.png", bomb.data(), bomb.size());           // decompression bomb
    auto deep = t::encode(cv::Mat(20, 20, CV_16UC3, cv::Scalar(1000, 30000, 60000)), ".png");
    w.add("000000000006.png", deep.data(), deep.size());           // 16-bit: fine
    auto rgba = t::encode(cv::Mat(20, 20, CV_8UC4, cv::Scalar(1, 2, 3, 4)), ".png");
    w.add("000000000007.png", rgba.data(), rgba.size());           // alpha: fine
    good("000000000008");
  }
  {
    TarWriter w(d / "00000001.tar");
    for (int k = 0; k < 4; ++k) {
      auto p = t::id_png(50 + k);
      w.add("00000001000" + std::to_string(k) + ".png", p.data(), p.size());
    }
  }
  auto size = std::filesystem::file_size(d / "00000001.tar");
  std::filesystem::resize_file(d / "00000001.tar", size - 1024 - 100);  // truncated tar
}

TEST(DataLoader, BadSamplesAreSkippedCountedAndTheRunGoesOn) {
  t::TempDir d;
  write_hostile_shards(d);
  t::write_bytes(d / "folder/a/ok.jpg", t::jpeg(30, 30));
  auto small = t::jpeg(30, 30);
  t::write_bytes(d / "folder/a/cut.jpg", std::vector<uint8_t>(small.begin(), small.begin() + 200));
  t::write_bytes(d / "folder/b/empty.png", {});

  auto c = base_loader(2);
  SourceConfig s = wds();
  s.shards = {d / "{00000000..00000002}.tar"};  // 00000002 is missing
  SourceConfig f = folder();
  f.root = d / "folder";
  c.sources = {s, f};
  c.stream_lanes = 2;
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  Loader l(c);
  for (int i = 0; i < 12; ++i) {
    Batch b = *l.next();
    ASSERT_EQ(b.size(), 8);
    for (int k = 0; k < 8; ++k)
      if (b.source[k].item<int64_t>() == 1) {
        EXPECT_EQ(b.labels[k].item<int64_t>(), 0);  // only ok.jpg is good
      }
  }
  auto reasons = l.bad_samples().by_reason();
  for (const char* r : {"truncated jpeg", "empty file", "not an image", "no image member", "too many pixels",
                        "truncated tar", "missing or unreadable shard"})
    EXPECT_GT(reasons[r], 0) << r;
  EXPECT_GT(l.bad_samples().by_source()["inet"], 0);
  EXPECT_GT(l.bad_samples().total(), 8);
  spdlog::set_default_logger(previous);
  // Several epochs meet the same bad files again: each is warned about once, and the summary
  // tells skips from distinct bad samples (7 in the shards, 2 in the folder).
  EXPECT_EQ(l.bad_samples().unique(), 9);
  EXPECT_GT(l.bad_samples().total(), l.bad_samples().unique());
  const std::string text = log.str();
  int warnings = 0;
  for (size_t at = text.find("skipping bad sample"); at != std::string::npos; at = text.find("skipping bad sample", at + 1))
    ++warnings;
  EXPECT_EQ(warnings, 9) << text;
  EXPECT_NE(l.summary().find("(9 distinct)"), std::string::npos) << l.summary();
}

// One evaluation pass over the hostile shards (and a missing third): each bad sample is
// counted exactly once under its reason, and exactly the good and the odd-but-valid samples
// are delivered — a blank image standing in for a bad one would be an extra sample.
TEST(DataLoader, BadSamplesAreCountedExactlyAndNeverDelivered) {
  t::TempDir d;
  write_hostile_shards(d);
  auto c = base_loader(2);
  c.train = false;
  c.augment.color_jitter = 0;
  SourceConfig s = wds();
  s.shards = {d / "{00000000..00000002}.tar"};  // 00000002 is missing
  c.sources = {s};
  Loader l(c);
  std::multiset<std::string> got;
  const int plane = 16 * 16;
  while (auto b = l.next()) {
    auto img = b->images.contiguous();
    for (int64_t k = 0; k < b->size(); ++k) {
      const uint8_t* chw = img[k].data_ptr<uint8_t>();
      const int r = chw[0], g = chw[plane], bl = chw[2 * plane];
      // 16-bit (B, G, R) = (1000, 30000, 60000) scaled to 8 bits, within rounding.
      if (std::abs(r - 234) <= 1 && std::abs(g - 117) <= 1 && std::abs(bl - 4) <= 1) got.insert("16-bit");
      else if (r == 3 && g == 2 && bl == 1) got.insert("rgba");
      else got.insert("id " + std::to_string(t::id_of(chw, plane)));
    }
  }
  EXPECT_EQ(got, (std::multiset<std::string>{"id 1", "id 2", "id 50", "id 51", "id 52", "16-bit", "rgba"}));
  std::map<std::string, int64_t> coarse;  // reasons without their detail
  for (const auto& [reason, n] : l.bad_samples().by_reason()) coarse[reason.substr(0, reason.find(" ("))] += n;
  EXPECT_EQ(coarse, (std::map<std::string, int64_t>{{"truncated jpeg", 1},
                                                    {"empty file", 1},
                                                    {"not an image", 1},
                                                    {"no image member", 1},
                                                    {"too many pixels", 1},
                                                    {"truncated tar", 1},
                                                    {"missing or unreadable shard", 1}}));
  EXPECT_EQ(l.bad_samples().total(), 7);
}

// One lane, many workers: decodes run in parallel, yet which sample lands in which slot (bad
// ones skipped in between) and where a resume continues do not depend on the worker count.
TEST(DataLoader, OneLaneGivesTheSameBatchesWithAnyWorkerCount) {
  t::TempDir d;
  auto cut = t::jpeg(200, 200);
  cut.resize(cut.size() / 2);
  for (int s = 0; s < 2; ++s) {
    TarWriter w(d / ("0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < 23; ++k) {
      std::string key = std::to_string(s) + "_" + std::to_string(1000 + k);
      if (k % 5 == 2) {
        w.add(key + ".jpg", cut.data(), cut.size());  // bad: truncated
      } else if (k % 7 == 3) {
        w.add(key + ".txt", "no image");  // bad: no image member
      } else {
        auto png = t::id_png(100 * s + k + 1, 8 + k % 9);
        w.add(key + ".png", png.data(), png.size());
      }
    }
  }
  auto c = base_loader(0);
  SourceConfig s = wds();
  s.shards = {d / "{00000000..00000001}.tar"};
  c.sources = {s, synth(0.3)};
  c.stream_lanes = 1;
  c.batch_size = 6;
  Loader ref(c);
  auto want = take_batches(ref, 12);  // several epochs of the 2 x 23 samples
  nlohmann::json saved;
  {
    Loader at4(c);
    take_batches(at4, 4);
    saved = at4.state();
  }
  for (int workers : {1, 3, 6}) {
    c.workers = workers;
    c.prefetch = 4;
    Loader l(c);
    for (int i = 0; i < 12; ++i) expect_same_batches(want[i], *l.next(), "workers " + std::to_string(workers) + " batch " + std::to_string(i));
    Loader resumed(c);
    resumed.load_state(saved.get<LoaderState>());
    for (int i = 4; i < 12; ++i) expect_same_batches(want[i], *resumed.next(), "resumed, workers " + std::to_string(workers));
  }
  EXPECT_GT(ref.bad_samples().by_reason()["truncated jpeg"], 0);
  EXPECT_GT(ref.bad_samples().by_reason()["no image member"], 0);
}

TEST(DataLoader, ConfigurationMistakesFailAtStartup) {
  auto expect_error = [](LoaderConfig c, const std::string& needle) {
    try {
      Loader l(c);
      ADD_FAILURE() << "no error for: " << needle;
    } catch (const aim::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto c = base_loader();
  auto nothing = wds();
  nothing.shards = {files().dir / "wds/{00000010..00000019}.tar"};
  c.sources = {nothing};
  expect_error(c, "exist");
  nothing.shards = {files().dir / "nowhere/*.tar"};
  c.sources = {nothing};
  expect_error(c, "matches nothing");
  t::TempDir empty;
  auto f = folder();
  f.root = empty.path.string();
  c.sources = {f};
  expect_error(c, "holds no images");
  c.sources = {folder(0.8), idx(0.0)};
  expect_error(c, "weight");
  c.sources = {folder(0.0), idx(0.0)};
  expect_error(c, "weight");
  auto bad_kind = folder();
  bad_kind.kind = "parquet";
  c.sources = {bad_kind};
  expect_error(c, "unknown kind");
  c.sources = {wds()};
  c.world_size = 8;
  c.rank = 7;
  expect_error(c, "fewer than world_size");
  c = base_loader();
  c.sources = {};
  expect_error(c, "no sources");
}

// A hold-out by sample index: the held-out side and the training side partition the data
// exactly as HoldOut::holds says, on random-access sources (train draws and eval passes, any
// world size) and on streams.
TEST(DataLoader, HoldOutSplitsEverySourceBySampleIndex) {
  auto c = base_loader(2);
  c.sources = {idx()};
  c.augment = AugmentConfig{};
  c.augment.scale_min = c.augment.scale_max = 1.0;
  c.augment.ratio_min = c.augment.ratio_max = 1.0;
  c.augment.hflip = 0;
  c.augment.eval_crop_pct = 1.0;
  c.img_size = 12;  // the whole image: pixel (0,0) = (i*7) & 255 names item i
  c.holdout = HoldOut{0.3, 11, false};
  std::set<int> want_held, want_kept;
  for (int i = 0; i < 50; ++i) (c.holdout.holds(i) ? want_held : want_kept).insert((i * 7) & 255);
  ASSERT_GT(want_held.size(), 5u);
  ASSERT_GT(want_kept.size(), 25u);
  auto item = [](const Batch& b, int64_t i) { return static_cast<int>(b.images[i][0][0][0].item<uint8_t>()); };
  for (bool held : {false, true}) {
    for (int world : {1, 2}) {
      std::multiset<int> seen;
      for (int r = 0; r < world; ++r) {
        auto e = c;
        e.train = false;
        e.holdout.held = held;
        e.world_size = world;
        e.rank = r;
        e.batch_size = 4;
        Loader l(e);
        EXPECT_EQ(l.source_sizes().at(0), static_cast<int64_t>((held ? want_held : want_kept).size()));
        while (auto b = l.next())
          for (int64_t i = 0; i < b->size(); ++i) seen.insert(item(*b, i));
      }
      const auto& want = held ? want_held : want_kept;
      EXPECT_EQ(seen, std::multiset<int>(want.begin(), want.end())) << "held " << held << ", world " << world;
    }
  }
  // Training draws one epoch over exactly the kept items.
  c.batch_size = static_cast<int64_t>(want_kept.size());
  Loader train(c);
  std::multiset<int> epoch;
  Batch b = *train.next();
  for (int64_t i = 0; i < b.size(); ++i) epoch.insert(item(b, i));
  EXPECT_EQ(epoch, std::multiset<int>(want_kept.begin(), want_kept.end()));

  // Streams: the sides are disjoint and together hold every sample; training never yields a
  // held-out one.
  auto s = base_loader(2);
  s.sources = {wds()};
  s.augment.color_jitter = 0;
  s.stream_lanes = 1;
  s.holdout = HoldOut{0.3, 11, true};
  std::vector<std::set<int>> side(2);
  for (bool held : {false, true}) {
    auto e = s;
    e.train = false;
    e.holdout.held = held;
    Loader l(e);
    while (auto x = l.next())
      for (int64_t i = 0; i < x->size(); ++i)
        EXPECT_TRUE(side[held].insert(t::id_of(x->images[i].data_ptr<uint8_t>(), 16 * 16)).second);
  }
  EXPECT_EQ(side[0].size() + side[1].size(), static_cast<size_t>(files().wds_samples));
  EXPECT_GT(side[1].size(), 2u);
  for (int id : side[1]) EXPECT_EQ(side[0].count(id), 0u) << id;
  s.holdout.held = false;
  Loader stream_train(s);
  for (int k = 0; k < 6; ++k) {
    Batch x = *stream_train.next();
    for (int64_t i = 0; i < x.size(); ++i)
      EXPECT_EQ(side[1].count(t::id_of(x.images[i].data_ptr<uint8_t>(), 16 * 16)), 0u) << "a held-out sample in training";
  }
}
