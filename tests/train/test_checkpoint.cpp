// CheckpointManager on its own: an exact save -> restore round trip (weights, AdamW
// moments and steps), staged restores that leave the model untouched when a checkpoint is
// rejected, cleanup that only counts this run's checkpoints, the refusal to resume another
// config's, and ranks that must agree on the step.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/model/aim_pretrain.h"
#include "aim/train/checkpoint.h"
#include "aim/optim/optimizer.h"
#include "dist/dist_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;

namespace {

struct Trainee {
  model::AimPretrainModel net{nullptr};
  std::unique_ptr<torch::optim::AdamW> opt;

  explicit Trainee(uint64_t seed, int updates = 0) {
    torch::manual_seed(seed);
    net = model::AimPretrainModel(test::tiny_config());
    opt = optim::make_adamw(*net, optim::OptimConfig{});
    for (int i = 0; i < updates; ++i) {
      for (auto& p : net->parameters()) p.mutable_grad() = torch::randn_like(p);
      opt->step();
    }
  }
  io::NamedTensors weights() const {
    io::NamedTensors out;
    for (auto& [n, t] : io::state_dict(*net)) out.emplace_back(n, t.clone());
    return out;
  }
};

void expect_same(const io::NamedTensors& a, const io::NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

const auto kAnyLoader = [](const nlohmann::json&) {};

void save(train::CheckpointManager& m, int64_t step, Trainee& t) {
  m.save(step, *t.net, *t.opt, {{"position", step}}, {{"skipped_steps", 0}}, nullptr);
}

// Rewrites a checkpoint's state file without one tensor.
void drop_tensor(const std::string& ckpt_dir, const std::string& name) {
  const auto path = ckpt_dir + "/state.safetensors";
  auto f = io::load_safetensors(path);
  io::NamedTensors kept;
  for (auto& [n, t] : f.tensors)
    if (n != name) kept.emplace_back(n, t);
  ASSERT_EQ(kept.size() + 1, f.tensors.size()) << name;
  io::save_safetensors(path, kept, f.metadata);
}

std::string step_dir(const std::string& out, int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "/checkpoints/step_%09lld", static_cast<long long>(step));
  return out + buf;
}

TEST(Checkpoint, SaveRestoreIsExact) {
  test::TempDir dir;
  Trainee a(1, /*updates=*/3);
  train::CheckpointManager m(dir.file("run"), 0, 1, 2, "id-a");
  m.save(7, *a.net, *a.opt, {{"position", 123}}, {{"skipped_steps", 2}}, nullptr);

  Trainee b(2);
  auto rp = m.restore_latest(*b.net, *b.opt, false, kAnyLoader, nullptr);
  ASSERT_TRUE(rp);
  EXPECT_EQ(rp->step, 7);
  EXPECT_EQ(rp->loader["position"], 123);
  EXPECT_EQ(rp->meta["skipped_steps"], 2);
  EXPECT_FALSE(rp->foreign);
  expect_same(a.weights(), b.weights());
  const auto sa = train::optimizer_state(*a.opt), sb = train::optimizer_state(*b.opt);
  ASSERT_EQ(sa.size(), sb.size());
  ASSERT_FALSE(sa.empty());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
  }
  EXPECT_EQ(sb[0].first, "optim.g0.p0.step");
  EXPECT_EQ(sb[0].second.item<int64_t>(), 3);
}

// A checkpoint that fails any check after its weights were read must not leave them in the
// model: the fallback (an older checkpoint, or a fresh start) trains from the right state.
TEST(Checkpoint, RejectedCheckpointLeavesModelAndOptimizerUntouched) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  train::CheckpointManager m(out, 0, 1, 3, "id");
  Trainee older(1, 1), newer(2, 2);
  save(m, 4, older);
  save(m, 8, newer);
  drop_tensor(step_dir(out, 8), "optim.g0.p1.exp_avg");

  Trainee fresh(3);
  auto rp = m.restore_latest(*fresh.net, *fresh.opt, false, kAnyLoader, nullptr);
  ASSERT_TRUE(rp);
  EXPECT_EQ(rp->step, 4);
  expect_same(older.weights(), fresh.weights());

  // Only the broken one left: a fresh start keeps the fresh weights and no optimizer state.
  fs::remove_all(step_dir(out, 4));
  Trainee fresh2(5);
  const auto before = fresh2.weights();
  EXPECT_FALSE(m.restore_latest(*fresh2.net, *fresh2.opt, false, kAnyLoader, nullptr));
  expect_same(before, fresh2.weights());
  EXPECT_TRUE(train::optimizer_state(*fresh2.opt).empty());

  // A loader position that does not fit rejects the checkpoint the same way.
  Trainee good(6, 1), fresh3(7);
  save(m, 12, good);
  const auto before3 = fresh3.weights();
  auto refuse = [](const nlohmann::json&) { throw Error("saved loader state is for other sources"); };
  EXPECT_FALSE(m.restore_latest(*fresh3.net, *fresh3.opt, false, refuse, nullptr));
  expect_same(before3, fresh3.weights());
}

// A newest checkpoint damaged on disk (bytes overwritten, a file cut short, meta.json
// gone) is skipped with a warning naming it and the reason; the next one resumes.
TEST(Checkpoint, CorruptNewestCheckpointIsSkippedWithAWarning) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  train::CheckpointManager m(out, 0, 1, 5, "id");
  Trainee older(1, 1), newer(2, 2);
  save(m, 3, older);
  auto damages = std::vector<std::function<void(const std::string&)>>{
      [](const std::string& d) {  // garbage over the header
        std::fstream f(d + "/state.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        f.write("\xff\xff\xff\xff\xff\xff\xff\x7f garbage", 17);
      },
      [](const std::string& d) { fs::resize_file(d + "/state.safetensors", fs::file_size(d + "/state.safetensors") / 2); },
      [](const std::string& d) { fs::remove(d + "/meta.json"); },
  };
  for (size_t k = 0; k < damages.size(); ++k) {
    SCOPED_TRACE("damage " + std::to_string(k));
    save(m, 9, newer);
    damages[k](step_dir(out, 9));
    std::ostringstream log;
    auto previous = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
    Trainee fresh(3);
    auto rp = m.restore_latest(*fresh.net, *fresh.opt, false, kAnyLoader, nullptr);
    spdlog::set_default_logger(previous);
    ASSERT_TRUE(rp);
    EXPECT_EQ(rp->step, 3);
    expect_same(older.weights(), fresh.weights());
    EXPECT_NE(log.str().find("checkpoint " + step_dir(out, 9) + " is unusable ("), std::string::npos) << log.str();
    EXPECT_NE(log.str().find("falling back to an older one"), std::string::npos) << log.str();
    fs::remove_all(step_dir(out, 9));
  }
}

TEST(Checkpoint, StrayOrHalfOptimizerStateIsRejected) {
  Trainee t(1, 1);
  auto state = train::optimizer_state(*t.opt);
  auto stray = state;
  stray.emplace_back("optim.g0.p9999.step", torch::tensor({1}, torch::kInt64));
  EXPECT_THROW(train::load_optimizer_state(*t.opt, stray, "x"), Error);
  auto half = state;
  half.erase(half.begin() + 1);  // p0's exp_avg
  EXPECT_THROW(train::load_optimizer_state(*t.opt, half, "x"), Error);
  train::load_optimizer_state(*t.opt, state, "x");
}

// Keep-last-K counts this run's checkpoints only and never deletes the one just written.
TEST(Checkpoint, CleanupCountsOnlyThisRunsCheckpoints) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  Trainee t(1, 1);
  train::CheckpointManager other(out, 0, 1, 5, "other-config");
  save(other, 9, t);
  save(other, 10, t);
  train::CheckpointManager ours(out, 0, 1, 1, "this-config");
  save(ours, 2, t);
  EXPECT_TRUE(fs::exists(step_dir(out, 2))) << "the checkpoint just written was deleted";
  EXPECT_TRUE(fs::exists(step_dir(out, 9)));
  EXPECT_TRUE(fs::exists(step_dir(out, 10)));
  save(ours, 4, t);
  EXPECT_FALSE(fs::exists(step_dir(out, 2)));
  EXPECT_TRUE(fs::exists(step_dir(out, 4)));
  EXPECT_TRUE(fs::exists(step_dir(out, 9)));
  EXPECT_TRUE(fs::exists(step_dir(out, 10)));
}

TEST(Checkpoint, AnotherConfigsCheckpointsAreRefusedUnlessForced) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  Trainee t(1, 1);
  train::CheckpointManager other(out, 0, 1, 5, "other-config");
  save(other, 10, t);

  train::CheckpointManager ours(out, 0, 1, 2, "this-config");
  Trainee fresh(2);
  const auto before = fresh.weights();
  try {
    ours.restore_latest(*fresh.net, *fresh.opt, false, kAnyLoader, nullptr);
    ADD_FAILURE() << "resumed another config's checkpoint";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("holds checkpoints of a different config (step_000000010"), std::string::npos) << msg;
    EXPECT_NE(msg.find("train.resume=force"), std::string::npos) << msg;
  }
  expect_same(before, fresh.weights());
  auto rp = ours.restore_latest(*fresh.net, *fresh.opt, true, kAnyLoader, nullptr);
  ASSERT_TRUE(rp);
  EXPECT_TRUE(rp->foreign);
  EXPECT_EQ(rp->step, 10);
  expect_same(t.weights(), fresh.weights());
}

// One rank cannot read the newest checkpoint (a rank-local I/O error): no rank may resume,
// and the error names what each rank found.
TEST(Checkpoint, RanksMustResumeFromTheSameStep) {
  test::TempDir dir;
  Trainee t(1, 1);
  for (const char* name : {"rank0", "rank1"}) {
    train::CheckpointManager m(dir.file(name), 0, 2, 3, "id");
    // Written as a 2-rank checkpoint: both loader files present.
    for (int64_t step : {3, 6}) {
      m.save(step, *t.net, *t.opt, {{"position", step}}, {}, nullptr);
      fs::copy_file(step_dir(dir.file(name), step) + "/loader_rank0.json",
                    step_dir(dir.file(name), step) + "/loader_rank1.json");
    }
  }
  fs::resize_file(step_dir(dir.file("rank1"), 6) + "/state.safetensors", 100);

  const int port = test::free_loopback_port();
  std::vector<io::NamedTensors> before(2);
  std::vector<std::unique_ptr<Trainee>> fresh;
  fresh.push_back(std::make_unique<Trainee>(5));
  fresh.push_back(std::make_unique<Trainee>(6));
  before[0] = fresh[0]->weights();
  before[1] = fresh[1]->weights();
  auto errors = test::run_ranks(2, [&](int r) {
    auto comm = test::gloo_rank(r, 2, port);
    train::CheckpointManager m(dir.file("rank" + std::to_string(r)), r, 2, 3, "id");
    m.restore_latest(*fresh[r]->net, *fresh[r]->opt, false, kAnyLoader, comm.get());
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_NE(errors[r].find("ranks found different checkpoints to resume from (rank 0: step 6, rank 1: step 3)"),
              std::string::npos)
        << "rank " << r << ": " << errors[r];
    expect_same(before[r], fresh[r]->weights());
  }
}

TEST(Checkpoint, ParameterDigestSeesEveryWeight) {
  Trainee a(1), b(1);
  EXPECT_EQ(train::parameter_digest(*a.net), train::parameter_digest(*b.net));
  {
    torch::NoGradGuard ng;
    b.net->parameters().back().view(-1)[0] += 1e-3;
  }
  EXPECT_NE(train::parameter_digest(*a.net), train::parameter_digest(*b.net));
}

}  // namespace
