// CheckpointManager on several in-process Gloo ranks sharing one directory: every rank writes
// its own part, a checkpoint of any world size restores onto any other (replicated or sharded
// AdamW; small chunks, so the parts have many checksum blocks and the slices travel in many
// all-gather chunks), a damaged part that only one rank reads makes every rank fall back, a
// failed write on one rank completes no checkpoint, and the consolidated weights.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/model/aim_encoder.h"
#include "aim/model/trunk_weights.h"
#include "checkpoint_test_util.h"
#include "dist/dist_test_util.h"

namespace fs = std::filesystem;
using namespace aim;
using test::LogCapture;
using test::step_dir;
using test::Trainee;

namespace {

constexpr uint64_t kSmallChunk = 4096;

train::CheckpointOptions small_chunks(bool async = false) {
  train::CheckpointOptions o;
  o.chunk_bytes = kSmallChunk;
  o.async = async;
  return o;
}

// Saves `trainees` (one per rank) as step `step` on world = trainees.size() ranks.
void save_on_ranks(const std::string& out, int64_t step, std::vector<std::unique_ptr<Trainee>>& trainees,
                   bool async = false) {
  const int world = static_cast<int>(trainees.size());
  const int port = test::free_loopback_port();
  auto errors = test::run_ranks(world, [&](int r) {
    auto comm = test::gloo_rank(r, world, port);
    train::CheckpointManager m(out, r, world, 5, "id", "", small_chunks(async));
    Trainee& t = *trainees[r];
    m.save(step, *t.net, *t.opt, test::loader_json(step, r, world), {}, comm.get(), t.shards);
    m.finish(comm.get());
  });
  for (int r = 0; r < world; ++r) ASSERT_EQ(errors[r], "") << "rank " << r;
}

std::vector<std::unique_ptr<Trainee>> trainees(uint64_t seed, int updates, int world, bool sharded) {
  std::vector<std::unique_ptr<Trainee>> out;  // built here: torch::manual_seed is process-wide
  for (int r = 0; r < world; ++r) out.push_back(std::make_unique<Trainee>(seed, updates, r, sharded ? world : 0));
  return out;
}

// Restores on world = fresh.size() ranks; returns each rank's resumed step (-1: none) and error.
std::vector<int64_t> restore_on_ranks(const std::string& out, std::vector<std::unique_ptr<Trainee>>& fresh,
                                      std::vector<std::string>* errors_out = nullptr) {
  const int world = static_cast<int>(fresh.size());
  std::vector<int64_t> steps(world, -1);
  auto body = [&](int r, dist::Communicator* comm) {
    train::CheckpointManager m(out, r, world, 5, "id", "", small_chunks());
    Trainee& t = *fresh[r];
    if (auto rp = m.restore_latest(*t.net, *t.opt, false, test::kAnyLoader, comm, t.shards)) steps[r] = rp->step;
  };
  std::vector<std::string> errors(world);
  if (world == 1) {
    try {
      body(0, nullptr);
    } catch (const std::exception& e) {
      errors[0] = e.what();
    }
  } else {
    const int port = test::free_loopback_port();
    errors = test::run_ranks(world, [&](int r) {
      auto comm = test::gloo_rank(r, world, port);
      body(r, comm.get());
    });
  }
  if (errors_out) *errors_out = errors;
  else
    for (int r = 0; r < world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  return steps;
}

TEST(CheckpointRanks, ResumesOnAnyWorldSizeWithOrWithoutSharding) {
  for (const bool saved_sharded : {false, true}) {
    test::TempDir dir;
    const std::string out = dir.file("run");
    auto savers = trainees(1, 2, 3, saved_sharded);
    save_on_ranks(out, 4, savers);
    for (int r = 0; r < 3; ++r)
      EXPECT_TRUE(fs::exists(step_dir(out, 4) + "/part_rank" + std::to_string(r) + ".safetensors"));
    // Each part holds one third of the weights: no rank wrote the whole model.
    const auto whole = fs::file_size(step_dir(out, 4) + "/part_rank0.safetensors") * 3;
    EXPECT_LT(fs::file_size(step_dir(out, 4) + "/part_rank0.safetensors"), whole / 2);
    const Trainee reference(1, 2);
    for (const bool sharded : {false, true})
      for (const int world : {1, 2, 4}) {
        SCOPED_TRACE(std::string("saved ") + (saved_sharded ? "sharded" : "replicated") + " on 3 ranks, restored " +
                     (sharded ? "sharded" : "replicated") + " on " + std::to_string(world));
        auto fresh = trainees(7, 0, world, sharded);
        const auto steps = restore_on_ranks(out, fresh);
        for (int r = 0; r < world; ++r) {
          EXPECT_EQ(steps[r], 4) << "rank " << r;
          test::expect_same(reference.weights(), fresh[r]->weights());
          test::expect_same_optimizer(reference, *fresh[r]);
        }
      }
  }
}

// One rank alone reads the damaged part; every rank still falls back to the older checkpoint,
// and the warning names the file, on the rank that found it and on rank 0.
TEST(CheckpointRanks, ADamagedPartIsSkippedByEveryRank) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  auto older = trainees(1, 1, 2, false), newer = trainees(2, 2, 2, false);
  save_on_ranks(out, 3, older);
  save_on_ranks(out, 6, newer);
  const std::string part = step_dir(out, 6) + "/part_rank1.safetensors";
  const auto size = fs::file_size(part);
  for (const std::string damage : {"flip", "cut"}) {
    SCOPED_TRACE(damage);
    const std::string backup = dir.file("backup");
    fs::copy_file(part, backup, fs::copy_options::overwrite_existing);
    if (damage == "flip") {
      std::fstream f(part, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(static_cast<std::streamoff>(size * 3 / 4));
      const char c = static_cast<char>(f.get());
      f.seekp(static_cast<std::streamoff>(size * 3 / 4));
      f.put(static_cast<char>(c ^ 0x10));
    } else {
      fs::resize_file(part, size - 100);
    }
    for (const int world : {2, 3}) {
      LogCapture log;
      auto fresh = trainees(9, 0, world, false);
      const auto steps = restore_on_ranks(out, fresh);
      const Trainee reference(1, 1);
      for (int r = 0; r < world; ++r) {
        EXPECT_EQ(steps[r], 3) << "rank " << r << " of " << world;
        test::expect_same(reference.weights(), fresh[r]->weights());
      }
      const std::string why = damage == "flip" ? "part_rank1.safetensors: fails its checksum" : "part_rank1.safetensors: has ";
      EXPECT_NE(log.str().find("is unusable (" + why), std::string::npos) << log.str();
      EXPECT_NE(log.str().find("(part_rank1.safetensors)"), std::string::npos) << "the other ranks' warning: " << log.str();
    }
    fs::copy_file(backup, part, fs::copy_options::overwrite_existing);
  }
  auto fresh = trainees(9, 0, 2, false);
  EXPECT_EQ(restore_on_ranks(out, fresh)[0], 6) << "the repaired checkpoint is usable again";
}

// A rank whose write fails: no rank completes the checkpoint, every rank says which rank failed,
// and the previous checkpoint is the one to resume.
TEST(CheckpointRanks, AWriteThatFailsOnOneRankCompletesNoCheckpoint) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  auto t = trainees(1, 1, 2, false);
  save_on_ranks(out, 2, t);
  // Rank 1's temporary part file cannot be created (a directory stands in its place).
  fs::create_directories(step_dir(out, 4) + ".partial/part_rank1.safetensors.tmp." + std::to_string(::getpid()));
  const int port = test::free_loopback_port();
  auto errors = test::run_ranks(2, [&](int r) {
    auto comm = test::gloo_rank(r, 2, port);
    train::CheckpointManager m(out, r, 2, 5, "id", "", small_chunks(/*async=*/true));
    m.save(4, *t[r]->net, *t[r]->opt, test::loader_json(4, r, 2), {}, comm.get());
    m.finish(comm.get());
  });
  for (int r = 0; r < 2; ++r)
    EXPECT_NE(errors[r].find("the checkpoint of step 4 was not completed: writing it failed on rank(s) 1"),
              std::string::npos)
        << "rank " << r << ": " << errors[r];
  EXPECT_FALSE(fs::exists(step_dir(out, 4)));
  EXPECT_FALSE(fs::exists(step_dir(out, 4) + ".partial/manifest.json"));
  auto fresh = trainees(9, 0, 2, false);
  EXPECT_EQ(restore_on_ranks(out, fresh)[1], 2);
}

TEST(CheckpointRanks, ConsolidationAssemblesEveryRanksPartIntoOneFile) {
  test::TempDir dir;
  const std::string out = dir.file("run");
  auto t = trainees(1, 1, 3, true);
  save_on_ranks(out, 5, t, /*async=*/true);
  const auto r = train::consolidate_checkpoint(out, dir.file("w.safetensors"));
  EXPECT_EQ(r.step, 5);
  EXPECT_EQ(r.checkpoint, step_dir(out, 5));
  const auto file = io::load_safetensors(dir.file("w.safetensors"));
  const Trainee reference(1, 1);
  test::expect_same(reference.weights(), file.tensors);
  EXPECT_EQ(file.metadata.at("trained_steps"), "5");
  // probe.weights may name the run directory: the trunk comes from the newest checkpoint's parts.
  model::AimEncoder enc(test::tiny_config());
  model::load_trunk_weights(enc, out);
  const auto ref = reference.weights();
  int compared = 0;
  for (const auto& [name, t] : io::state_dict(*enc))
    for (const auto& [rn, rt] : ref)
      if (rn == name) {
        EXPECT_TRUE(torch::equal(t, rt)) << name;
        ++compared;
      }
  EXPECT_EQ(compared, static_cast<int>(io::state_dict(*enc).size()));
  // A damaged part is refused by name; nothing is written.
  fs::resize_file(step_dir(out, 5) + "/part_rank2.safetensors", 64);
  try {
    train::consolidate_checkpoint(step_dir(out, 5), dir.file("x.safetensors"));
    ADD_FAILURE() << "consolidated a damaged checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("part_rank2.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.file("x.safetensors")));
}

}  // namespace
