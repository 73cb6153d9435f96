#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include "aim/dist/communicator.h"

namespace aim::train {

/// What a checkpoint restores besides the weights.
struct ResumePoint {
  int64_t step = 0;            // optimizer steps completed
  nlohmann::json loader;       // this rank's data-loader position
  nlohmann::json meta;         // counters (skipped steps, images seen, ...)
  std::string path;            // the checkpoint directory
};

/// Resumable checkpoints under `<out_dir>/checkpoints/step_<N>/`:
///   state.safetensors  model.* weights and optim.* AdamW moments/steps (rank 0)
///   loader_rank<R>.json each rank's loader position (streaming sources differ per rank)
///   meta.json          step, world size, config fingerprint, counters (written last)
/// All files go to `step_<N>.partial/`, which rank 0 renames once every rank is done, so a
/// directory named step_<N> is always complete: a crash mid-write can never lose the last
/// good checkpoint. Keeps the newest `keep`.
class CheckpointManager {
 public:
  CheckpointManager(std::string out_dir, int rank, int world_size, int keep);

  void save(int64_t step, const torch::nn::Module& model, const torch::optim::AdamW& opt,
            const nlohmann::json& loader_state, const nlohmann::json& meta, dist::Communicator* comm);

  /// Restores the newest checkpoint that reads back completely; a corrupt newer one is
  /// skipped with a warning. Every rank validates every file, so all ranks pick the same
  /// one without communicating. nullopt when there is none.
  std::optional<ResumePoint> restore_latest(torch::nn::Module& model, torch::optim::AdamW& opt);

  /// Completed checkpoint directories, newest first.
  std::vector<std::string> list() const;
  std::string directory() const { return dir_; }

 private:
  std::string dir_;
  int rank_, world_size_, keep_;
};

/// AdamW state (moments and step counts) as named tensors "optim.g<G>.p<P>.<field>",
/// matched by parameter position, and back. Loading checks shapes and group sizes.
std::vector<std::pair<std::string, torch::Tensor>> optimizer_state(const torch::optim::AdamW& opt);
void load_optimizer_state(torch::optim::AdamW& opt, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                          const std::string& source);

}  // namespace aim::train
