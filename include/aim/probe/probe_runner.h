#pragma once
// aim-probe's engine (spec §8): train a grid of probe heads on frozen trunk features in one
// pass, evaluate them, keep the best; evaluate a saved probe; predict images.
#include <cstdint>
#include <string>
#include <vector>

#include "aim/config/run_config.h"
#include "aim/dist/communicator.h"
#include "aim/dist/dist_env.h"

namespace aim::probe {

struct HeadResult {
  double lr = 0, weight_decay = 0;
  double train_loss = 0;  // mean over the last epoch
  double val_loss = 0, top1 = 0, top5 = 0;  // accuracies in [0, 1]
  double select_loss = -1, select_top1 = -1;  // on the held-out part of probe.train; -1 without one
};

/// DINO's weighted kNN on the same features (probe.knn; probe/knn.h), beside the heads.
struct KnnResult {
  int64_t k = 0;                  // 0: not evaluated
  double temperature = 0;
  double top1 = 0, top5 = 0;      // on probe.val, in [0, 1]
  int64_t bank = 0;               // training images compared with
};

struct ProbeReport {
  std::vector<HeadResult> heads;  // in grid order: lrs outer, weight decays inner
  size_t best = 0;                // highest top-1 on the selection split (ties: lower loss there)
  int64_t classes = 0, train_samples = 0, val_samples = 0, steps = 0;
  bool cached = false;            // features computed once and reused every epoch
  double seconds = 0;
  std::string weights;            // what the features came from
  std::string out_dir;            // results.json and probe.safetensors (rank 0)
  /// Where the best head was chosen: "train_holdout" (probe.select_fraction of probe.train,
  /// held out by sample index and never trained on, on every path: cached features,
  /// augmentation, features recomputed every step, LoRA), "val" (probe.select_fraction=0 and
  /// a grid: probe.val itself, so the reported top-1 is the grid's maximum on the split it is
  /// reported on, an optimistic number), or "none" (one head and no hold-out: nothing chosen).
  std::string selection = "val";
  int64_t select_samples = 0;
  /// The best lr is the smallest or the largest of a grid of several lrs: the grid may not
  /// hold the optimum (a warning says so; widen probe.lrs).
  bool lr_at_edge = false;
  KnnResult knn;
  std::vector<std::string> class_names;  // probe.train's, when its source names them
  /// top-5 is reported only with more than 5 classes (it is 100 % otherwise).
  bool has_top5() const { return classes > 5; }
};

/// Trains every (lr, weight decay) head of the grid on the same frozen features — the trunk
/// runs once per batch, not once per head; data-parallel over `comm` when given (gradients
/// averaged, batch norm statistics taken from rank 0 for evaluation). Writes results.json and
/// the best head as probe.safetensors (official head.* naming) to the probe's out_dir.
/// `weights_override` replaces probe.weights (aim-train passes its own export).
ProbeReport run_probe(const config::RunConfig& cfg, const dist::DistEnv& env, dist::Communicator* comm,
                      const std::string& weights_override = "");

struct EvalReport {
  double top1 = 0, top5 = 0, loss = 0;
  int64_t samples = 0, classes = 0;
};

/// Evaluates a saved probe (ours or an official head.*) on probe.val with the configured trunk.
/// Labels are matched by class name when the probe file and probe.val both name their
/// classes (probe.class_match), else by position, and a class count that differs from the
/// data's is an error naming both.
EvalReport evaluate_saved_probe(const config::RunConfig& cfg, const dist::DistEnv& env, dist::Communicator* comm,
                                const std::string& probe_path);

struct Prediction {
  std::string file;
  std::vector<std::pair<int64_t, double>> top;  // (class, probability), best first
  std::string error;                            // set when the file could not be read
};

/// Classifies every image file in `dir` and its subfolders (sorted by path) with the eval transform.
std::vector<Prediction> predict_folder(const config::RunConfig& cfg, const std::string& probe_path,
                                       const std::string& dir, int topk);

/// aim-probe --export-hub DIR: the trunk of probe.weights (a LoRA probe's own adapted trunk
/// when its file names one) and the attentive probe at `probe_path`, written as a hub model
/// directory (probe/hub_export.h).
void export_hub_from_files(const config::RunConfig& cfg, const std::string& probe_path, const std::string& dir);

/// The probe's output directory: probe.out_dir, or <train.out_dir>/probe.
std::string probe_out_dir(const config::RunConfig& cfg);

/// The names --predict prints for the head's classes: the probe file's own (written with the
/// probe), else the configured split's (ImageFolder folders), else empty. Throws aim::Error
/// when the file's names and the configured split's disagree (probe.class_match).
std::vector<std::string> prediction_class_names(const config::RunConfig& cfg, const std::string& probe_path);

/// The table aim-probe prints after training: one row per head (held-out top-1 when there is
/// a hold-out; top-5 only with more than 5 classes), the kNN row, where the head was chosen.
std::string format_probe_report(const ProbeReport& report, const config::ProbeConfig& probe);

}  // namespace aim::probe
