#pragma once
#include <cstdint>
#include <functional>
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
  nlohmann::json loader;       // this rank's data-loader position
  nlohmann::json meta;         // counters (skipped steps, images seen, ...)
  std::string path;            // the checkpoint directory
  bool foreign = false;        // written by another config (only with resume=force)
  std::string changes;         // foreign: the differing keys and what they do, "; "-separated
};

/// Resumable checkpoints under `<out_dir>/checkpoints/step_<N>/`:
///   state.safetensors  model.* weights and optim.* AdamW moments/steps (rank 0)
///   loader_rank<R>.json each rank's loader position (streaming sources differ per rank)
///   optim_rank<R>.safetensors  with sharded optimizer state: rank R's pieces, named
///                      optim.p<param>.b<begin>.<field>, instead of optim.* in state.safetensors
///   meta.json          step, world size, run identity, counters (written last)
/// All files go to `step_<N>.partial/`, which rank 0 renames once every rank is done, so a
/// directory named step_<N> is always complete: a crash mid-write can never lose the last
/// good checkpoint.
///
/// A checkpoint belongs to a run through its identity (config::run_identity). Cleanup keeps
/// the newest `keep` of this run's checkpoints and never touches another run's, nor the one
/// just written; restoring considers only this run's unless told to take any (force).
class CheckpointManager {
 public:
  /// `config_yaml`: this run's resolved config, stored with every checkpoint so that a later
  /// run can say which keys it changes (describe_config_changes).
  CheckpointManager(std::string out_dir, int rank, int world_size, int keep, std::string identity,
                    std::string config_yaml = "");

  /// `meta` gets step, world size and identity added.
  /// `shards` non-empty: `opt` holds this rank's pieces only (train.sharding=optimizer) and
  /// every rank writes its own optimizer file; no rank ever holds the whole optimizer state.
  void save(int64_t step, const torch::nn::Module& model, const torch::optim::AdamW& opt,
            const nlohmann::json& loader_state, const nlohmann::json& meta, dist::Communicator* comm,
            const std::vector<ShardPiece>& shards = {});

  /// Restores the newest usable checkpoint of this run (any run's with force). Staged: the
  /// files are read and checked against the model, the optimizer and `check_loader` (which
  /// may apply the loader position: it runs last and must throw before changing anything
  /// when the state does not fit), and only a checkpoint that passes all of that is copied
  /// into `model` and `opt` — a rejected one leaves them exactly as they were. A corrupt
  /// newer checkpoint is skipped with a warning.
  ///
  /// With `comm`, all ranks must settle on the same step (a rank-local read error would
  /// otherwise resume ranks from different points): a disagreement stops every rank with an
  /// error naming each rank's step, before anything is committed.
  ///
  /// Throws aim::Error when the directory holds checkpoints but none of this run's (another
  /// config wrote them) and force is off. nullopt when there is nothing to resume.
  ///
  /// With `shards`, the optimizer state comes from the sharded files and is re-sliced: a
  /// checkpoint written by any number of ranks restores onto this rank's pieces, each rank
  /// reading only the files that overlap its range.
  std::optional<ResumePoint> restore_latest(torch::nn::Module& model, torch::optim::AdamW& opt, bool force,
                                            const std::function<void(const nlohmann::json&)>& check_loader,
                                            dist::Communicator* comm, const std::vector<ShardPiece>& shards = {});

  /// Completed checkpoint directories, newest first.
  std::vector<std::string> list() const;
  std::string directory() const { return dir_; }

 private:
  bool is_ours(const nlohmann::json& meta) const;
  void remove_old(const std::string& just_written) const;

  std::string dir_;
  int rank_, world_size_, keep_;
  std::string identity_;
  std::string config_yaml_;
};

/// AdamW state (moments and step counts) as named tensors "optim.g<G>.p<P>.<field>",
/// matched by parameter position, and back. Loading checks shapes, group sizes and that no
/// tensor is left over or half present, before it changes anything.
std::vector<std::pair<std::string, torch::Tensor>> optimizer_state(const torch::optim::AdamW& opt);
void load_optimizer_state(torch::optim::AdamW& opt, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                          const std::string& source);

/// A digest of parameter values (per-tensor float64 sums of x and x^2, hashed), computed
/// on their device: equal weights give equal digests on every rank.
std::string parameter_digest(const torch::nn::Module& model);

}  // namespace aim::train
