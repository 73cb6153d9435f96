#pragma once
// Helpers for the CheckpointManager tests: a tiny model with its AdamW (replicated, or sharded
// as train.sharding slices it), state comparisons, log capture, and rewriting a part file
// with its manifest record updated (to reach the checks behind the checksums).
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include "aim/compat.h"
#include "aim/io/checksum.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/model/aim_pretrain.h"
#include "aim/optim/optimizer.h"
#include "aim/train/checkpoint.h"
#include "test_util.h"

namespace aim::test {

/// A tiny model and its AdamW after `updates` random steps. With `world` > 0 the optimizer
/// holds only rank `rank`'s pieces of the flattened parameters (train.sharding's slicing).
struct Trainee {
  model::AimPretrainModel net{nullptr};
  std::unique_ptr<torch::optim::AdamW> opt;
  std::vector<train::ShardPiece> shards;

  explicit Trainee(uint64_t seed, int updates = 0, int rank = 0, int world = 0) {
    torch::manual_seed(seed);
    net = model::AimPretrainModel(tiny_config());
    if (world > 0) {
      const auto named = net->named_parameters();
      int64_t total = 0;
      for (const auto& p : named) total += p.value().numel();
      const auto [lo, hi] = train::shard_range(total, rank, world);
      std::vector<torch::Tensor> decay, no_decay;
      int64_t offset = 0;
      for (size_t k = 0; k < named.size(); ++k) {
        const auto& p = named[k].value();
        const int64_t a = std::max(lo, offset) - offset, b = std::min(hi, offset + p.numel()) - offset;
        offset += p.numel();
        if (a >= b) continue;
        auto leaf = p.detach().view({-1}).slice(0, a, b);
        leaf.requires_grad_(true);
        shards.push_back({static_cast<int64_t>(k), a, b, leaf});
        (optim::decays(named[k].key(), p) ? decay : no_decay).push_back(leaf);
      }
      opt = optim::make_adamw(std::move(decay), std::move(no_decay), optim::OptimConfig{});
    } else {
      opt = optim::make_adamw(*net, optim::OptimConfig{});
    }
    torch::manual_seed(seed + 1000);
    for (int i = 0; i < updates; ++i) step();
  }
  // One AdamW step on seeded random gradients (the same on every rank for the same seed).
  void step() {
    if (shards.empty()) {
      for (auto& p : net->parameters()) p.mutable_grad() = torch::randn_like(p);
    } else {
      for (auto& p : net->parameters()) p.mutable_grad() = torch::randn_like(p);
      for (auto& s : shards) s.leaf.mutable_grad() = net->parameters()[s.param].grad().view({-1}).slice(0, s.begin, s.end);
    }
    opt->step();
  }
  io::NamedTensors weights() const {
    io::NamedTensors out;
    for (auto& [n, t] : io::state_dict(*net)) out.emplace_back(n, t.clone());
    return out;
  }
  /// AdamW's (step, exp_avg, exp_avg_sq) of parameter k, flattened, or empty tensors.
  std::tuple<int64_t, torch::Tensor, torch::Tensor> state_of(const torch::Tensor& key) const {
    auto it = opt->state().find(compat::optimizer_state_key(key));
    if (it == opt->state().end()) return {-1, {}, {}};
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    return {s.step(), s.exp_avg().reshape({-1}), s.exp_avg_sq().reshape({-1})};
  }
};

inline void expect_same(const io::NamedTensors& a, const io::NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

/// `got`'s AdamW state equals `full`'s (a replicated optimizer) on every parameter piece `got` holds.
inline void expect_same_optimizer(const Trainee& full, const Trainee& got) {
  const auto params = full.net->parameters();
  const auto mine = got.net->parameters();
  int checked = 0;
  if (got.shards.empty()) {
    for (size_t k = 0; k < params.size(); ++k) {
      auto [s1, m1, v1] = full.state_of(params[k]);
      auto [s2, m2, v2] = got.state_of(mine[k]);
      ASSERT_EQ(s1, s2) << k;
      if (s1 < 0) continue;
      EXPECT_TRUE(torch::equal(m1, m2)) << k;
      EXPECT_TRUE(torch::equal(v1, v2)) << k;
      ++checked;
    }
  } else {
    for (const auto& p : got.shards) {
      auto [s1, m1, v1] = full.state_of(params[p.param]);
      auto [s2, m2, v2] = got.state_of(p.leaf);
      ASSERT_EQ(s1, s2) << p.param;
      if (s1 < 0) continue;
      EXPECT_TRUE(torch::equal(m1.slice(0, p.begin, p.end), m2)) << p.param;
      EXPECT_TRUE(torch::equal(v1.slice(0, p.begin, p.end), v2)) << p.param;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

const auto kAnyLoader = [](const nlohmann::json&) {};

inline std::string step_dir(const std::string& out, int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "/checkpoints/step_%09lld", static_cast<long long>(step));
  return out + buf;
}

/// A train-mode loader state of rank `rank` of `world` with one random-access source.
inline nlohmann::json loader_json(int64_t step, int rank = 0, int world = 1) {
  return {{"version", 2},       {"step", step},      {"next_global", step * 4}, {"seed", 0},
          {"rank", rank},       {"world_size", world}, {"batch_size", 4 / world}, {"accumulation", 1},
          {"train", true},      {"sources", {"synthetic0"}}, {"taken", {step * 4}}, {"delivered", {step * 4 / world}},
          {"units", {0}},       {"lanes", {nlohmann::json::array()}}, {"eval_stream", 0}};
}

/// Captures spdlog's default logger for its lifetime.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_)));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string str() const { return log_.str(); }

 private:
  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> previous_;
};

/// Rewrites file `name` of checkpoint `dir` through `edit` (a part: its tensors) and updates its
/// size and digest in the manifest, so that only the checks behind the checksum can see it.
inline void rewrite_part(const std::string& dir, const std::string& name,
                         const std::function<void(io::NamedTensors&)>& edit) {
  auto f = io::load_safetensors(dir + "/" + name);
  edit(f.tensors);
  io::save_safetensors(dir + "/" + name, f.tensors, f.metadata);
  std::ifstream in(dir + "/" + name, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  nlohmann::json man = nlohmann::json::parse(std::ifstream(dir + "/manifest.json"));
  for (auto& rec : man["files"])
    if (rec["name"] == name) {
      rec["bytes"] = bytes.size();
      rec["xxh64"] = io::digest_hex(io::block_digest(bytes.data(), bytes.size(), man["block_bytes"].get<uint64_t>()));
    }
  std::ofstream(dir + "/manifest.json") << man.dump(1);
}

}  // namespace aim::test
