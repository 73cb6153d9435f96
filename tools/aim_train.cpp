// aim-train: pre-train an AIM model from a YAML config (see docs/config.md).
//   aim-train --config configs/aim-600m.yaml [key=value ...] [--dry-run] [--nproc-per-node N]
//   aim-train --consolidate DIR [--output FILE]   (one safetensors file of a checkpoint's weights)
// Under torchrun/SLURM each process is one rank; --nproc-per-node starts N local ranks.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "aim/config/run_config.h"
#include "aim/dist/communicator.h"
#include "aim/dist/dist_env.h"
#include "aim/dist/local_launcher.h"
#include "aim/error.h"
#include "aim/io/json_lines.h"
#include "aim/probe/probe_runner.h"
#include "aim/runtime/device.h"
#include "aim/runtime/stop_request.h"
#include "aim/train/checkpoint.h"
#include "aim/train/memory_plan.h"
#include "aim/train/run_status.h"
#include "aim/train/trainer.h"

namespace {

// The last logged loss and val_loss of a finished run, from its metrics.jsonl.
std::string final_numbers(const std::string& out_dir) {
  double loss = -1, val = -1;
  int64_t loss_step = -1, val_step = -1;
  for (const auto& j : aim::io::read_json_lines((std::filesystem::path(out_dir) / "metrics.jsonl").string())) {
    if (!j.is_object()) continue;
    if (j.contains("loss") && j["loss"].is_number()) {
      loss = j["loss"].get<double>();
      loss_step = j.value("step", int64_t(-1));
    }
    if (j.contains("val_loss") && j["val_loss"].is_number()) {
      val = j["val_loss"].get<double>();
      val_step = j.value("step", int64_t(-1));
    }
  }
  std::string out;
  if (loss_step >= 0) out += fmt::format("; final loss {:.4f} (step {})", loss, loss_step);
  if (val_step >= 0) out += fmt::format(", val_loss {:.4f} (step {})", val, val_step);
  return out;
}

// The ranks of one node that a dry run plans for: --nproc-per-node, else the launcher's.
int dry_run_local_ranks(const aim::dist::DistEnv& env, int nproc) { return nproc > 0 ? nproc : env.local_world_size; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Pre-train an Autoregressive Image Model (AIM) from a YAML config"};
  std::string config_path;
  std::vector<std::string> overrides;
  bool dry_run = false;
  int nproc = 0;
  int nnodes = 0;
  std::string consolidate, output;
  app.add_option("--config", config_path, "YAML config file (required unless --consolidate)");
  app.add_option("--consolidate", consolidate,
                 "Write one safetensors file of the weights of checkpoint DIR (a step_N directory, or a run "
                 "directory: its newest complete checkpoint), assembled from every rank's part, and exit");
  app.add_option("--output", output, "With --consolidate: the file to write (default: <checkpoint dir>.safetensors)");
  app.add_option("overrides", overrides, "key=value overrides by dotted path, e.g. train.steps=100");
  app.add_flag("--dry-run", dry_run, "Resolve and validate the config, print the model summary, exit");
  app.add_option("--nproc-per-node", nproc, "Start N local ranks (CPU: Gloo, CUDA: NCCL)");
  app.add_option("--nnodes", nnodes,
                 "With --dry-run: plan for M nodes of --nproc-per-node ranks (world size M x N); multi-node "
                 "training itself starts through torchrun or SLURM");
  CLI11_PARSE(app, argc, argv);

  aim::train::RunStatusFile run_status;  // <train.out_dir>/run_status.json, rank 0: how this invocation ended
  try {
    if (!consolidate.empty()) {
      std::string out = output;
      if (out.empty()) {
        // The checkpoint it came from, as a file beside it.
        std::string dir = consolidate;
        while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
        out = (std::filesystem::exists(std::filesystem::path(dir) / "manifest.json") ? dir : dir + "/consolidated") +
              ".safetensors";
      }
      const auto r = aim::train::consolidate_checkpoint(consolidate, out);
      spdlog::info("wrote {}: {} tensors, {:.2f} GB of weights of {} (step {})", out, r.tensors, r.bytes / 1e9,
                   r.checkpoint, r.step);
      return 0;
    }
    if (config_path.empty()) throw aim::Error("--config is required (or --consolidate DIR)");
    // --dry-run starts no ranks: it plans for --nnodes x --nproc-per-node of them.
    if (nnodes > 0 && !dry_run)
      throw aim::Error("--nnodes is for --dry-run; start multi-node training with torchrun or srun (see README)");
    if (nnodes > 0 && nproc <= 0) throw aim::Error("--nnodes needs --nproc-per-node (ranks per node)");
    if (nproc > 0 && !dry_run) {
      std::vector<std::string> args = {argv[0], "--config", config_path};
      args.insert(args.end(), overrides.begin(), overrides.end());
      return aim::dist::launch_local(nproc, args);
    }
    // SIGTERM / SIGUSR1 / SIGINT: finish the step, checkpoint, exit 128 + signal.
    aim::runtime::install_stop_handlers();
    auto env = aim::dist::dist_env_from_environment();
    if (dry_run && nproc > 0) env.world_size = nproc * std::max(nnodes, 1);
    if (env.rank != 0) spdlog::set_level(spdlog::level::warn);
    if (env.rank == 0 && !dry_run) run_status.set_dir_from_overrides(overrides);
    auto cfg = aim::config::load_run_config(config_path, overrides);
    if (env.rank == 0 && !cfg.data.val && cfg.train.val_every > 0 && cfg.train.val_every <= cfg.train.steps)
      spdlog::warn("train.val_every={} but data.val is not set: no validation loss will be measured (set data.val, "
                   "or train.val_every=0 to say so)",
                   cfg.train.val_every);
    if (dry_run) {
      std::cout << aim::train::describe_dry_run(cfg, env.world_size, dry_run_local_ranks(env, nproc));
      return 0;
    }
    // One process group for training and the optional probe that follows.
    // This rank's GPU becomes the current device before anything touches CUDA.
    if (env.rank == 0) run_status.start(cfg.train.out_dir);
    const auto device = aim::runtime::select_device(cfg.train.device, env.local_rank, env.local_world_size);
    aim::runtime::pin_current_device(device);
    std::unique_ptr<aim::dist::Communicator> comm;
    if (env.distributed()) comm = aim::dist::connect(env, aim::train::connect_options(cfg, device));
    auto s = aim::train::run_training(cfg, env, comm.get());
    if (s.stopped)
      return run_status.end("interrupted", 128 + (s.stop_signal ? s.stop_signal : SIGTERM),
                            std::string("stopped by ") +
                                (s.stop_signal ? aim::runtime::stop_signal_name(s.stop_signal) : "a peer rank's signal") +
                                " after step " +
                                std::to_string(s.steps_done) + " (checkpoint written)");
    // The probe keeps no checkpoint: from here a stop signal ends the process at once (the
    // trunk is exported, so re-running the command goes straight to the probe).
    aim::runtime::restore_default_stop_handlers();
    const int late_signal = aim::runtime::stop_signal();
    if (late_signal && cfg.probe.at_end) {
      if (env.rank == 0)
        spdlog::warn("{} after the last step: probe.at_end skipped", aim::runtime::stop_signal_name(late_signal));
      return run_status.end("interrupted", 128 + late_signal, "probe skipped: stop signal after the last step");
    }
    if (env.rank == 0 && s.resumed_from >= 0 && s.resumed_from == s.steps_done)
      spdlog::info("already finished: the checkpoint of step {} in {} is the run's end; nothing to train{}", s.steps_done,
                   cfg.train.out_dir, final_numbers(cfg.train.out_dir));
    else if (env.rank == 0)
      spdlog::info("done: {} steps, loss {:.4f} (first step{}) -> {:.4f}{}", s.steps_done, s.first_loss,
                   s.resumed_from >= 0 ? fmt::format(" after resuming at {}", s.resumed_from) : std::string(), s.last_loss,
                   s.last_val_loss >= 0 ? fmt::format(", val_loss {:.4f}", s.last_val_loss) : std::string());
    if (cfg.probe.at_end) {
      // The trunk every rank has just confirmed (export_final_trunk), unless probe.weights
      // names other weights on purpose.
      const std::string trunk = cfg.probe.weights.empty() ? s.trunk_path : cfg.probe.weights;
      auto r = aim::probe::run_probe(cfg, env, comm.get(), trunk);
      const auto& b = r.heads[r.best];
      if (env.rank == 0)
        spdlog::info("probe ({}): top-1 {:.2f} %{} on {} images ({}); results in {}/results.json", cfg.probe.kind,
                     100 * b.top1, r.has_top5() ? fmt::format(", top-5 {:.2f} %", 100 * b.top5) : std::string(),
                     r.val_samples,
                     r.selection == "val"             ? "head chosen on probe.val itself"
                     : r.selection == "train_holdout" ? "head chosen on held-out training images"
                                                      : "one head",
                     r.out_dir);
    }
    return run_status.end("done", 0);
  } catch (const aim::Error& e) {
    std::cerr << "aim-train: error: " << e.what() << std::endl;
    return run_status.end("failed", 2, e.what());
  } catch (const std::exception& e) {
    std::cerr << "aim-train: internal error: " << e.what() << std::endl;
    return run_status.end("failed", 3, std::string("internal error: ") + e.what());
  }
}
