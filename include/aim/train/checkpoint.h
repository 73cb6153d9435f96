#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include "aim/dist/communicator.h"

namespace aim::train {

/// What resuming from a checkpoint written under `before_yaml` with the config `after_yaml`
/// changes: one line per differing key, "train.steps 50 -> 100 (the learning-rate schedule ...)".
/// Empty when nothing differs; one line saying so when before_yaml is empty (a checkpoint
/// written before configs were stored with it).
/// training_only: only keys that change what training computes (config::affects_training),
/// for a refusal to resume; the operational ones cannot be its reason.
std::vector<std::string> describe_config_changes(const std::string& before_yaml, const std::string& after_yaml,
                                                 bool training_only = false);
/// train.sharding=optimizer (ZeRO-1): elements [begin, end) of parameter `param` (position
/// in model.parameters(), data flattened) belong to this rank. `leaf` is that piece as a view
/// of the parameter's storage: this rank's AdamW updates it in place and keeps state for it only.
struct ShardPiece {
  int64_t param = 0, begin = 0, end = 0;
  torch::Tensor leaf;
};

/// Rank r of world w owns the flattened parameters' elements [r*n/w, (r+1)*n/w).
inline std::pair<int64_t, int64_t> shard_range(int64_t total, int rank, int world) {
  return {total * rank / world, total * (rank + 1) / world};
}

/// What a checkpoint restores besides the weights.
struct ResumePoint {
  int64_t step = 0;            // optimizer steps completed
  nlohmann::json loader;       // the loader position of every rank, merged (data::merge_loader_states)
  nlohmann::json meta;         // counters (skipped steps, images seen, ...)
  std::string path;            // the checkpoint directory
  bool foreign = false;        // written by another config (only with resume=force)
  std::string changes;         // foreign: the differing keys and what they do, "; "-separated
  double seconds = 0;          // this rank's restore: reading, checking, the exchange of slices
  uint64_t bytes_read = 0;     // bytes of part files this rank read
};

/// How a CheckpointManager writes.
struct CheckpointOptions {
  bool async = false;    // train.ckpt_async: the write runs on background threads
  bool pinned = false;   // page-locked host buffers (CUDA: asynchronous device-to-host copies)
  int writer_threads = 2;                    // per rank, each writing and hashing whole chunks
  uint64_t chunk_bytes = uint64_t{64} << 20;  // largest host buffer chunk = checksum block (a power of two)
};

/// Where the time of one save went, in seconds, on this rank.
struct SaveTimes {
  int64_t step = -1;
  double waited = 0;    // for the previous save to complete (at most one is in flight)
  double snapshot = 0;  // the blocking part: the copy into host buffers
  double write = 0;     // this rank's files, from the end of the snapshot until written
  double finish = 0;    // the ranks' agreement and the manifest
  uint64_t bytes = 0;   // bytes this rank wrote
};

/// The chunk (= checksum block) size for a part of `bytes`: the smallest power of two from 4 KiB
/// that holds it, at most `max_chunk` (CheckpointOptions::chunk_bytes).
uint64_t checkpoint_chunk_bytes(uint64_t bytes, uint64_t max_chunk);

/// The chunk size of every rank's part for a model of `parameters` on `world_size` ranks (the
/// manifest has one block size, so it depends on the model, not on the part).
uint64_t checkpoint_part_chunk_bytes(int64_t parameters, int world_size, uint64_t max_chunk);

/// Host memory a rank's snapshot takes: its 1/world slice of the weights and of AdamW's two
/// moments (12 bytes per parameter / world) and the part's header, rounded up to whole chunks.
uint64_t checkpoint_snapshot_bytes(int64_t parameters, int world_size, uint64_t max_chunk = uint64_t{64} << 20);

/// train.ckpt_async=auto: on when `ranks_per_node` snapshots take at most half of the host
/// memory available now (/proc/meminfo). `why` gets the numbers, for the log.
bool checkpoint_async_fits(uint64_t snapshot_bytes, int ranks_per_node, std::string* why = nullptr);

/// Sharded, checksummed checkpoints under `<out_dir>/checkpoints/step_<N>/`:
///   part_rank<R>.safetensors  rank R's 1/W slice of the flattened parameters and of AdamW's
///                      state (whatever train.sharding is): every rank writes its own part,
///                      in parallel, and no rank ever holds the whole state (names in
///                      include/aim/io/sharded_checkpoint.h)
///   loader_rank<R>.json each rank's loader position
///   meta.json          step, world size, run identity, config, counters (rank 0)
///   manifest.json      written last: every file's size and XXH64 block digest, the block size,
///                      the parameters' names, shapes and dtypes
/// The files go to `step_<N>.partial/`; once every rank has written its files, rank 0 writes the
/// manifest and renames the directory. A directory is a checkpoint only if it holds a manifest
/// (`step_<N>`, or a `step_<N>.partial` whose rename a crash cut off); one missing any file or
/// with a file that fails its checksum is never resumed.
///
/// Saving (save): the state is copied into preallocated host buffers (the only part that blocks
/// training; pinned on CUDA), then every rank writes its files from them, with async on
/// background threads while training goes on. At most one save is in flight: the next save, or
/// finish(), waits for it. Background threads never call collectives: the ranks agree that every
/// write ended on the main thread (finish), and only then does rank 0 write the manifest.
///
/// A checkpoint belongs to a run through its identity (config::run_identity). Cleanup, after
/// a checkpoint is complete, keeps the newest `keep` complete checkpoints of this run, never
/// touches another run's, nor a directory without a manifest of a save in flight; restoring
/// considers only this run's unless told to take any (force).
class CheckpointManager {
 public:
  /// `config_yaml`: this run's resolved config, stored with every checkpoint so that a later
  /// run can say which keys it changes (describe_config_changes).
  CheckpointManager(std::string out_dir, int rank, int world_size, int keep, std::string identity,
                    std::string config_yaml = "", CheckpointOptions options = {});
  /// Waits for a write in flight (without completing the checkpoint: that needs every rank).
  ~CheckpointManager();
  CheckpointManager(const CheckpointManager&) = delete;
  CheckpointManager& operator=(const CheckpointManager&) = delete;

  /// Saves step `step`: `meta` gets step, world size and identity added. `shards` non-empty:
  /// `opt` holds this rank's pieces only (train.sharding != none). Every rank calls it after the
  /// same step (`comm` may be null for one process). Without async it returns once the
  /// checkpoint is complete; with async once the snapshot is taken (finish() completes it).
  SaveTimes save(int64_t step, const torch::nn::Module& model, const torch::optim::AdamW& opt,
                 const nlohmann::json& loader_state, const nlohmann::json& meta, dist::Communicator* comm,
                 const std::vector<ShardPiece>& shards = {});

  /// Allocates the snapshot buffers now (checkpoint_snapshot_bytes; pinned host memory takes
  /// long to allocate), so that the first save's pause is the copy alone.
  void preallocate(int64_t parameters);

  /// A save whose checkpoint is not complete yet.
  bool in_flight() const;
  /// This rank's part of the save in flight has been written (or failed), or none is in flight:
  /// what a rank contributes to the vote that tells every rank when to call finish().
  bool write_done() const;
  /// Completes the save in flight (every rank, after the same step): waits for this rank's
  /// write, gathers every rank's file records, and rank 0 writes the manifest, renames the
  /// directory and removes what keep-last-K lets go. Throws aim::Error on every rank when any
  /// rank's write failed (the checkpoint stays incomplete; the previous one is intact).
  /// Returns the save's times; step -1 when nothing was in flight.
  SaveTimes finish(dist::Communicator* comm);

  /// Restores the newest usable checkpoint of this run (any run's with force). Every rank
  /// reads only the parts that overlap its slice of the parameters (mapped, one at a time),
  /// checks their checksums and sizes against the manifest, and all ranks vote on each
  /// candidate: a checkpoint that any rank finds damaged is skipped by every rank, with a
  /// warning naming the file. `check_loader` sees the merged loader positions of every rank
  /// and throws when they do not fit this run. Only a checkpoint every rank accepted is
  /// committed: each rank's slices into the model and optimizer, then an all-gather gives
  /// every rank the whole weights (and, without sharding, the whole AdamW state). A rejected
  /// checkpoint leaves `model` and `opt` exactly as they were.
  ///
  /// With `shards`, `opt` holds this rank's pieces (train.sharding != none). Any saved world
  /// size restores onto any other. `comm` is required when world_size > 1.
  ///
  /// Throws aim::Error when the directory holds checkpoints but none of this run's (another
  /// config wrote them) and force is off. nullopt when there is nothing to resume.
  std::optional<ResumePoint> restore_latest(torch::nn::Module& model, torch::optim::AdamW& opt, bool force,
                                            const std::function<void(const nlohmann::json&)>& check_loader,
                                            dist::Communicator* comm, const std::vector<ShardPiece>& shards = {});

  /// Complete checkpoint directories (those with a manifest), newest first.
  std::vector<std::string> list() const;
  std::string directory() const { return dir_; }
  const CheckpointOptions& options() const { return options_; }

 private:
  struct Impl;
  bool is_ours(const nlohmann::json& meta) const;
  void remove_old(const std::string& just_written) const;

  std::string dir_;
  int rank_, world_size_, keep_;
  std::string identity_;
  std::string config_yaml_;
  CheckpointOptions options_;
  std::unique_ptr<Impl> impl_;
};

/// One safetensors file of the weights of a checkpoint (`dir` = a checkpoint directory, or a
/// run directory: its newest complete checkpoint), under the model's parameter names (the
/// official naming), assembled from every rank's part with each part's checksum checked. The
/// file is written one parameter at a time: memory stays at the largest parameter.
struct ConsolidateResult {
  std::string checkpoint;  // the checkpoint directory read
  int64_t step = 0;
  size_t tensors = 0;
  uint64_t bytes = 0;
};
ConsolidateResult consolidate_checkpoint(const std::string& dir, const std::string& out_path);

/// AdamW state (moments and step counts) as named tensors "optim.g<G>.p<P>.<field>", by
/// group and position in the group: what tests compare between two optimizers.
std::vector<std::pair<std::string, torch::Tensor>> optimizer_state(const torch::optim::AdamW& opt);

/// A digest of parameter values (per-tensor float64 sums of x and x^2, hashed), computed
/// on their device: equal weights give equal digests on every rank.
std::string parameter_digest(const torch::nn::Module& model);

}  // namespace aim::train
