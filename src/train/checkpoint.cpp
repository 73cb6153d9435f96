// CheckpointManager: saving (the snapshot, the write, the completion every rank agrees on),
// the list of complete checkpoints and keep-last-K. Restoring: checkpoint_restore.cpp.
#include "aim/train/checkpoint.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "aim/compat.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/stopwatch.h"
#include "checkpoint_parts.h"
#include "checkpoint_writer.h"

namespace fs = std::filesystem;

namespace aim::train {
namespace {

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw Error("cannot read '" + p.string() + "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error("'" + p.string() + "' is not valid JSON: " + e.what());
  }
}

// A 64-bit digest as two exact doubles, for the agreement's all-reduce.
double high(uint64_t d) { return static_cast<double>(d >> 32); }
double low(uint64_t d) { return static_cast<double>(d & 0xffffffffu); }
uint64_t join_u32_halves(double hi, double lo) { return (static_cast<uint64_t>(hi) << 32) | static_cast<uint64_t>(lo); }

}  // namespace

struct CheckpointManager::Impl {
  ckpt::HostBuffer buffer;
  ckpt::BackgroundWriter writer;  // after `buffer`: destroyed (joined) first
  bool pending = false;           // a save whose checkpoint is not complete yet
  std::string partial;
  ckpt::ParamSpace space;
  SaveTimes times;
  std::chrono::steady_clock::time_point write_start;
};

CheckpointManager::CheckpointManager(std::string out_dir, int rank, int world_size, int keep, std::string identity,
                                     std::string config_yaml, CheckpointOptions options)
    : dir_((fs::path(out_dir) / "checkpoints").string()), rank_(rank), world_size_(world_size), keep_(std::max(1, keep)),
      identity_(std::move(identity)), config_yaml_(std::move(config_yaml)), options_(options),
      impl_(std::make_unique<Impl>()) {
  fs::create_directories(dir_);
}

CheckpointManager::~CheckpointManager() {
  // A write in flight finishes (its files stay consistent), but nothing completes it: that
  // takes every rank, and this one is leaving because of an error or a kill.
  if (impl_->writer.busy()) impl_->writer.wait();
}

std::vector<std::string> CheckpointManager::list() const {
  // step_N, or step_N.partial when a crash came between its manifest and its rename.
  std::map<std::string, std::string, std::greater<>> by_step;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const auto name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("step_", 0) != 0) continue;
    const auto dot = name.find('.');
    if (dot != std::string::npos && name.substr(dot) != ".partial") continue;
    if (!fs::exists(e.path() / ckpt::kManifest)) continue;
    const std::string step = name.substr(0, dot);
    if (!by_step.count(step) || dot == std::string::npos) by_step[step] = e.path().string();
  }
  std::vector<std::string> out;
  for (const auto& [step, path] : by_step) out.push_back(path);
  return out;
}

bool CheckpointManager::is_ours(const nlohmann::json& meta) const {
  return meta.is_object() && meta.value("run_identity", std::string()) == identity_;
}

void CheckpointManager::remove_old(const std::string& just_written) const {
  // Only this run's complete checkpoints count and only they are deleted: a directory whose
  // meta.json is missing or names another run is someone else's data (or a checkpoint a
  // later look may still explain), never ours to remove.
  int kept = 1;  // the one just written, whatever its name sorts as
  for (const auto& path : list()) {
    if (path == just_written) continue;
    nlohmann::json meta;
    try {
      meta = read_json(fs::path(path) / ckpt::kMeta);
    } catch (const std::exception&) {
      continue;
    }
    if (!is_ours(meta)) continue;
    if (kept < keep_) {
      ++kept;
      continue;
    }
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) spdlog::warn("could not remove old checkpoint {}: {}", path, ec.message());
  }
  // Directories of saves a crash cut short (no manifest), older than the one just completed:
  // the save in flight is always the newest step, and the other ranks may already be writing
  // the next one (a later step) while rank 0 is here.
  const std::string done = fs::path(just_written).filename().string().substr(0, 14);
  for (const auto& e : fs::directory_iterator(dir_)) {
    const auto name = e.path().filename().string();
    if (e.is_directory() && name.rfind("step_", 0) == 0 && name.size() > 8 && name.substr(0, 14) < done &&
        name.compare(name.size() - 8, 8, ".partial") == 0 && !fs::exists(e.path() / ckpt::kManifest)) {
      std::error_code ec;
      fs::remove_all(e.path(), ec);
    }
  }
}

SaveTimes CheckpointManager::save(int64_t step, const torch::nn::Module& model, const torch::optim::AdamW& opt,
                                  const nlohmann::json& loader_state, const nlohmann::json& meta,
                                  dist::Communicator* comm, const std::vector<ShardPiece>& shards) {
  if (world_size_ > 1 && !comm) throw Error("internal: a checkpoint of several ranks needs their communicator");
  const auto t0 = std::chrono::steady_clock::now();
  SaveTimes times;
  times.step = step;
  if (in_flight()) finish(comm);  // at most one save in flight
  times.waited = seconds_since(t0);

  // The snapshot: this rank's slice of the weights and AdamW state into the host buffer.
  const auto t_snap = std::chrono::steady_clock::now();
  Impl& m = *impl_;
  m.space = ckpt::ParamSpace::of(model);
  const auto [lo, hi] = shard_range(m.space.total(), rank_, world_size_);
  const auto params = model.parameters();
  auto state_of = [&](const torch::Tensor& p) -> const torch::optim::AdamWParamState* {
    auto it = opt.state().find(compat::optimizer_state_key(p));
    return it == opt.state().end() ? nullptr : static_cast<const torch::optim::AdamWParamState*>(it->second.get());
  };
  auto piece_state = [&](int64_t k, int64_t begin) -> const torch::optim::AdamWParamState* {
    if (shards.empty()) return state_of(params[k]);
    for (const auto& s : shards)
      if (s.param == k && s.begin == begin) return state_of(s.leaf);
    return nullptr;
  };
  const std::map<std::string, std::string> part_meta = {
      {"format", "aim-checkpoint-part"}, {"rank", std::to_string(rank_)}, {"world_size", std::to_string(world_size_)},
      {"step", std::to_string(step)}};
  const auto layout = ckpt::layout_part(m.space, lo, hi, [&](int64_t k, int64_t b) { return piece_state(k, b) != nullptr; },
                                        part_meta);
  const uint64_t chunk = checkpoint_part_chunk_bytes(m.space.total(), world_size_, options_.chunk_bytes);
  m.buffer.reserve(layout.file_bytes, chunk, options_.pinned);
  m.buffer.copy_bytes(layout.prefix.data(), layout.prefix.size(), 0);
  bool cuda = false;
  {
    torch::NoGradGuard ng;
    for (const auto& p : layout.pieces) {
      const auto* st = p.field == ckpt::Field::kWeight ? nullptr : piece_state(p.param, p.begin);
      // A sharded piece's moments are its leaf's whole state; a replicated one's a slice of them.
      const int64_t from = shards.empty() ? p.begin : 0, to = shards.empty() ? p.end : p.end - p.begin;
      torch::Tensor src;
      switch (p.field) {
        case ckpt::Field::kWeight: src = params[p.param].detach().view({-1}).slice(0, p.begin, p.end); break;
        case ckpt::Field::kExpAvg: src = st->exp_avg().view({-1}).slice(0, from, to); break;
        case ckpt::Field::kExpAvgSq: src = st->exp_avg_sq().view({-1}).slice(0, from, to); break;
        case ckpt::Field::kStep: src = torch::tensor({st->step()}, torch::kInt64); break;
      }
      cuda = cuda || src.is_cuda();
      m.buffer.copy_tensor(src, p.offset);
    }
  }
  // The copies ran on the current stream after the step's kernels; the snapshot is taken when
  // they are done, and from then on training may change the weights.
  if (cuda) torch::cuda::synchronize();
  const std::string loader_json = loader_state.dump();
  std::string meta_json;
  if (rank_ == 0) {
    nlohmann::json mj = meta;
    mj["step"] = step;
    mj["world_size"] = world_size_;
    mj["run_identity"] = identity_;
    if (!config_yaml_.empty()) mj["config"] = config_yaml_;
    mj["optimizer_sharding"] = shards.empty() ? "none" : "sharded";
    meta_json = mj.dump(2);
  }
  times.snapshot = seconds_since(t_snap);

  // The write: this rank's files into step_N.partial/.
  m.partial = (fs::path(dir_) / (ckpt::step_name(step) + ".partial")).string();
  fs::create_directories(m.partial);  // every rank: no rank waits for another to make it
  const uint64_t file_bytes = layout.file_bytes, block = chunk;
  const int threads = std::max(1, options_.writer_threads), rank = rank_;
  const std::string partial = m.partial;
  m.times = times;
  m.pending = true;
  m.write_start = std::chrono::steady_clock::now();
  m.writer.start(
      [&buffer = m.buffer, partial, file_bytes, block, threads, rank, step, loader_json, meta_json] {
        ckpt::WriteResult r;
        const auto t = std::chrono::steady_clock::now();
        r.files.push_back(ckpt::write_part((fs::path(partial) / ckpt::part_file(rank)).string(), buffer, file_bytes,
                                           threads, step, rank));
        r.files.push_back(ckpt::write_small_file((fs::path(partial) / ckpt::loader_file(rank)).string(), loader_json, block));
        if (rank == 0)
          r.files.push_back(ckpt::write_small_file((fs::path(partial) / ckpt::kMeta).string(), meta_json, block));
        for (const auto& f : r.files) r.bytes += f.bytes;
        const double delay = ckpt::test_write_delay() - seconds_since(t);
        if (delay > 0) std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        ckpt::test_fault("written", step, rank);
        return r;
      },
      options_.async);
  if (!options_.async) {
    const auto done = finish(comm);
    times.write = done.write;
    times.finish = done.finish;
    times.bytes = done.bytes;
  }
  return times;
}

void CheckpointManager::preallocate(int64_t parameters) {
  impl_->buffer.reserve(checkpoint_snapshot_bytes(parameters, world_size_, options_.chunk_bytes),
                        checkpoint_part_chunk_bytes(parameters, world_size_, options_.chunk_bytes), options_.pinned);
}

bool CheckpointManager::in_flight() const { return impl_->pending; }

bool CheckpointManager::write_done() const { return !impl_->pending || impl_->writer.done(); }

SaveTimes CheckpointManager::finish(dist::Communicator* comm) {
  Impl& m = *impl_;
  if (!m.pending) return {};
  m.pending = false;
  ckpt::WriteResult r = m.writer.wait();
  SaveTimes times = m.times;
  times.write = seconds_since(m.write_start);
  times.bytes = r.bytes;
  const auto t0 = std::chrono::steady_clock::now();
  if (!options_.async) m.buffer.release();  // a synchronous save keeps no memory between saves

  // Every rank's [ok, part bytes, part digest (2 halves), loader bytes, loader digest] through
  // one all-reduce that the host reads back: when it returns, every rank's write has ended.
  constexpr int kRow = 7;
  std::vector<double> rows(static_cast<size_t>(kRow * world_size_), 0.0);
  double* mine = rows.data() + kRow * rank_;
  const bool ok = r.error.empty() && r.files.size() >= 2;
  if (ok) {
    mine[0] = 1;
    mine[1] = static_cast<double>(r.files[0].bytes);
    mine[2] = high(r.files[0].digest);
    mine[3] = low(r.files[0].digest);
    mine[4] = static_cast<double>(r.files[1].bytes);
    mine[5] = high(r.files[1].digest);
    mine[6] = low(r.files[1].digest);
  }
  if (comm) rows = comm->all_reduce_sum_host(rows);
  std::string failed;
  for (int q = 0; q < world_size_; ++q)
    if (rows[static_cast<size_t>(kRow * q)] != 1) failed += (failed.empty() ? "" : ", ") + std::to_string(q);
  const fs::path partial(m.partial);
  if (!failed.empty())
    throw Error("the checkpoint of step " + std::to_string(times.step) + " was not completed: writing it failed on rank(s) " +
                failed + (ok ? std::string(" (see their logs)") : ": " + r.error) +
                "; the previous checkpoint is intact");
  if (rank_ == 0) {
    ckpt::Manifest man;
    man.step = times.step;
    man.world_size = world_size_;
    man.block_bytes = m.buffer.chunk_bytes();
    man.params = m.space;
    man.files.push_back(r.files.at(2));  // meta.json
    for (int q = 0; q < world_size_; ++q) {
      const double* row = rows.data() + kRow * q;
      man.files.push_back({ckpt::part_file(q), static_cast<uint64_t>(row[1]), join_u32_halves(row[2], row[3])});
      man.files.push_back({ckpt::loader_file(q), static_cast<uint64_t>(row[4]), join_u32_halves(row[5], row[6])});
    }
    // Files a crashed earlier attempt at this step left behind are not part of it.
    for (const auto& e : fs::directory_iterator(partial)) {
      const auto name = e.path().filename().string();
      if (!man.file(name)) fs::remove_all(e.path());
    }
    io::write_file_atomic((partial / ckpt::kManifest).string(), man.to_json().dump(1));
    ckpt::test_fault("manifest", times.step, rank_);
    const fs::path final_dir = partial.parent_path() / ckpt::step_name(times.step);
    fs::remove_all(final_dir);
    fs::rename(partial, final_dir);
    io::fsync_dir(dir_);
    remove_old(final_dir.string());
  }
  times.finish = seconds_since(t0);
  return times;
}

}  // namespace aim::train
