// CheckpointManager in one process: an exact save -> restore round trip (weights, AdamW
// moments and steps), the files a checkpoint is made of, staged restores that leave the model
// untouched when a checkpoint is rejected, damaged files skipped with a warning naming them,
// cleanup that only counts this run's complete checkpoints, an asynchronous save that writes
// the snapshot and not what training changed after it, and the refusal to resume another
// config's checkpoints. Several ranks: test_checkpoint_ranks.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "checkpoint_test_util.h"

namespace fs = std::filesystem;
using namespace aim;
using test::LogCapture;
using test::step_dir;
using test::Trainee;

namespace {

train::SaveTimes save(train::CheckpointManager& m, int64_t step, Trainee& t) {
  return m.save(step, *t.net, *t.opt, test::loader_json(step), {{"skipped_steps", 0}}, nullptr, t.shards);
}

TEST(Checkpoint, SaveRestoreIsExactAndTheFilesAreListedInTheManifest) {
  test::TempDir dir;
  Trainee a(1, /*updates=*/3);
  train::CheckpointManager m(dir.file("run"), 0, 1, 2, "id-a");
  m.save(7, *a.net, *a.opt, test::loader_json(7), {{"skipped_steps", 2}}, nullptr);
  EXPECT_FALSE(m.in_flight());

  const std::string d = step_dir(dir.file("run"), 7);
  EXPECT_FALSE(fs::exists(d + ".partial"));
  const auto man = nlohmann::json::parse(std::ifstream(d + "/manifest.json"));
  std::set<std::string> listed, present;
  for (const auto& f : man["files"]) listed.insert(f["name"].get<std::string>());
  for (const auto& e : fs::directory_iterator(d)) present.insert(e.path().filename().string());
  EXPECT_EQ(listed, (std::set<std::string>{"meta.json", "part_rank0.safetensors", "loader_rank0.json"}));
  EXPECT_EQ(present, (std::set<std::string>{"meta.json", "part_rank0.safetensors", "loader_rank0.json", "manifest.json"}));
  EXPECT_EQ(man["params"].size(), a.net->parameters().size());
  // The part is a safetensors file of flat slices under the parameters' own names.
  const auto part = io::load_safetensors(d + "/part_rank0.safetensors");
  const auto first = a.net->named_parameters()[0];
  bool found = false;
  for (const auto& [n, t] : part.tensors)
    if (n == "model." + first.key() + "@0") {
      found = true;
      EXPECT_TRUE(torch::equal(t, first.value().reshape({-1})));
    }
  EXPECT_TRUE(found) << "no model." << first.key() << "@0";

  Trainee b(2);
  auto rp = m.restore_latest(*b.net, *b.opt, false, test::kAnyLoader, nullptr);
  ASSERT_TRUE(rp);
  EXPECT_EQ(rp->step, 7);
  EXPECT_EQ(rp->loader["next_global"], 28);
  EXPECT_EQ(rp->loader["rank"], -1) << "the merged state of every rank";
  EXPECT_EQ(rp->meta["skipped_steps"], 2);
  EXPECT_FALSE(rp->foreign);
  EXPECT_GT(rp->bytes_read, 0u);
  test::expect_same(a.weights(), b.weights());
  test::expect_same_optimizer(a, b);
  EXPECT_EQ(std::get<0>(b.state_of(b.net->parameters()[0])), 3);
}

// A checkpoint that fails any check after its files were read must not leave them in the
// model: the fallback (an older checkpoint, or a fresh start) trains from the right state.
TEST(Checkpoint, RejectedCheckpointLeavesModelAndOptimizerUntouched) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  train::CheckpointManager m(out, 0, 1, 3, "id");
  Trainee older(1, 1), newer(2, 2);
  save(m, 4, older);
  save(m, 8, newer);
  // Half the optimizer state of one parameter, with a checksum that fits: only the content check sees it.
  const std::string p1 = newer.net->named_parameters()[1].key();
  test::rewrite_part(step_dir(out, 8), "part_rank0.safetensors", [&](io::NamedTensors& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [&](const auto& x) { return x.first == "optim.exp_avg_sq." + p1 + "@0"; }),
            t.end());
  });

  Trainee fresh(3);
  LogCapture log;
  auto rp = m.restore_latest(*fresh.net, *fresh.opt, false, test::kAnyLoader, nullptr);
  ASSERT_TRUE(rp);
  EXPECT_EQ(rp->step, 4);
  test::expect_same(older.weights(), fresh.weights());
  test::expect_same_optimizer(older, fresh);
  EXPECT_NE(log.str().find("optimizer state covers"), std::string::npos) << log.str();

  // Only the broken one left: a fresh start keeps the fresh weights and no optimizer state.
  fs::remove_all(step_dir(out, 4));
  Trainee fresh2(5);
  const auto before = fresh2.weights();
  EXPECT_FALSE(m.restore_latest(*fresh2.net, *fresh2.opt, false, test::kAnyLoader, nullptr));
  test::expect_same(before, fresh2.weights());
  EXPECT_TRUE(train::optimizer_state(*fresh2.opt).empty());

  // A loader position that does not fit rejects the checkpoint the same way.
  Trainee good(6, 1), fresh3(7);
  save(m, 12, good);
  const auto before3 = fresh3.weights();
  auto refuse = [](const nlohmann::json&) { throw Error("saved loader state is for other sources"); };
  EXPECT_FALSE(m.restore_latest(*fresh3.net, *fresh3.opt, false, refuse, nullptr));
  test::expect_same(before3, fresh3.weights());
}

// A newest checkpoint damaged on disk (a byte flipped, a part cut short, meta.json gone or
// changed) is skipped with a warning naming the file; the next one resumes. Without its
// manifest a directory is no checkpoint at all.
TEST(Checkpoint, DamagedNewestCheckpointIsSkippedWithAWarningNamingTheFile) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  train::CheckpointManager m(out, 0, 1, 5, "id");
  Trainee older(1, 1), newer(2, 2);
  save(m, 3, older);
  struct Damage {
    std::string file, expect;
    std::function<void(const std::string&)> apply;
  };
  const std::vector<Damage> damages = {
      {"part_rank0.safetensors", "fails its checksum",
       [](const std::string& d) {
         std::fstream f(d + "/part_rank0.safetensors", std::ios::in | std::ios::out | std::ios::binary);
         f.seekp(static_cast<std::streamoff>(fs::file_size(d + "/part_rank0.safetensors") / 2));
         f.put('\x55');
       }},
      {"part_rank0.safetensors", "(truncated?)",
       [](const std::string& d) { fs::resize_file(d + "/part_rank0.safetensors", fs::file_size(d + "/part_rank0.safetensors") / 2); }},
      {"meta.json", "missing", [](const std::string& d) { fs::remove(d + "/meta.json"); }},
      {"loader_rank0.json", "fails its checksum",
       [](const std::string& d) {
         std::string s = test::slurp(d + "/loader_rank0.json");
         char& c = s[s.find("\"step\":") + 7];
         c = c == '1' ? '2' : '1';
         std::ofstream(d + "/loader_rank0.json") << s;
       }},
      {"", "", [](const std::string& d) { fs::remove(d + "/manifest.json"); }},
  };
  for (const auto& dmg : damages) {
    SCOPED_TRACE("damage to " + dmg.file);
    save(m, 9, newer);
    dmg.apply(step_dir(out, 9));
    LogCapture log;
    Trainee fresh(3);
    auto rp = m.restore_latest(*fresh.net, *fresh.opt, false, test::kAnyLoader, nullptr);
    ASSERT_TRUE(rp);
    EXPECT_EQ(rp->step, 3);
    test::expect_same(older.weights(), fresh.weights());
    if (!dmg.file.empty()) {
      EXPECT_NE(log.str().find("checkpoint " + step_dir(out, 9) + " is unusable (" + dmg.file), std::string::npos)
          << log.str();
      EXPECT_NE(log.str().find(dmg.expect), std::string::npos) << log.str();
      EXPECT_NE(log.str().find("falling back to an older one"), std::string::npos) << log.str();
    } else {
      EXPECT_EQ(m.list().size(), 1u) << "a directory without a manifest counts as a checkpoint";
    }
    fs::remove_all(step_dir(out, 9));
  }
}

// Keep-last-K counts this run's complete checkpoints only, never deletes the one just written,
// and lets an older one go only once the newer one is complete (with async: at finish()).
TEST(Checkpoint, CleanupCountsOnlyThisRunsCompleteCheckpoints) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  Trainee t(1, 1);
  train::CheckpointManager other(out, 0, 1, 5, "other-config");
  save(other, 9, t);
  save(other, 10, t);
  train::CheckpointOptions async;
  async.async = true;
  train::CheckpointManager ours(out, 0, 1, 1, "this-config", "", async);
  save(ours, 2, t);
  ours.finish(nullptr);
  EXPECT_TRUE(fs::exists(step_dir(out, 2) + "/manifest.json")) << "the checkpoint just written was deleted";
  // A crash's leftover: a directory without a manifest.
  fs::create_directories(step_dir(out, 3) + ".partial");
  save(ours, 4, t);
  ASSERT_TRUE(ours.in_flight());
  while (!ours.write_done()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // Written but not complete: the older one stays, and the new one is no checkpoint yet.
  EXPECT_TRUE(fs::exists(step_dir(out, 2) + "/manifest.json"));
  EXPECT_TRUE(fs::exists(step_dir(out, 4) + ".partial/part_rank0.safetensors"));
  EXPECT_EQ(ours.list().size(), 3u);
  const auto times = ours.finish(nullptr);
  EXPECT_EQ(times.step, 4);
  EXPECT_GT(times.bytes, 0u);
  EXPECT_FALSE(fs::exists(step_dir(out, 2)));
  EXPECT_FALSE(fs::exists(step_dir(out, 3) + ".partial")) << "a crashed save's directory was left";
  EXPECT_TRUE(fs::exists(step_dir(out, 4) + "/manifest.json"));
  EXPECT_TRUE(fs::exists(step_dir(out, 9)));
  EXPECT_TRUE(fs::exists(step_dir(out, 10)));
  EXPECT_EQ(ours.finish(nullptr).step, -1) << "nothing is in flight any more";
}

// The write runs after save() returns; what it writes is the state at the snapshot, not the
// weights and moments training has changed since.
TEST(Checkpoint, AsyncSaveWritesTheSnapshotNotTheLiveState) {
  test::TempDir dir;
  train::CheckpointOptions async;
  async.async = true;
  async.chunk_bytes = 4096;  // many chunks, written by two threads
  train::CheckpointManager m(dir.file("run"), 0, 1, 2, "id", "", async);
  Trainee a(1, 2), snapshot(1, 2);
  const auto t = save(m, 5, a);
  EXPECT_TRUE(m.in_flight());
  EXPECT_GT(t.snapshot, 0);
  a.step();  // training goes on while the write runs
  a.step();
  m.finish(nullptr);
  Trainee b(9);
  auto rp = m.restore_latest(*b.net, *b.opt, false, test::kAnyLoader, nullptr);
  ASSERT_TRUE(rp);
  test::expect_same(snapshot.weights(), b.weights());
  test::expect_same_optimizer(snapshot, b);
  // And the next save waits for nothing: none in flight.
  EXPECT_LT(save(m, 6, a).waited, 1.0);
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
    ours.restore_latest(*fresh.net, *fresh.opt, false, test::kAnyLoader, nullptr);
    ADD_FAILURE() << "resumed another config's checkpoint";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("holds checkpoints of a different config (step_000000010"), std::string::npos) << msg;
    EXPECT_NE(msg.find("train.resume=force"), std::string::npos) << msg;
  }
  test::expect_same(before, fresh.weights());
  auto rp = ours.restore_latest(*fresh.net, *fresh.opt, true, test::kAnyLoader, nullptr);
  ASSERT_TRUE(rp);
  EXPECT_TRUE(rp->foreign);
  EXPECT_EQ(rp->step, 10);
  test::expect_same(t.weights(), fresh.weights());
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
