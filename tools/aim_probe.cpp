// aim-probe: attentive / linear probes on a frozen AIM trunk (spec §8).
//   aim-probe --config FILE [key=value ...]                 train the probe grid, write results
//   aim-probe --config FILE --eval-only [--probe FILE]      evaluate a saved probe on probe.val
//   aim-probe --config FILE --predict DIR [--top K]         classify the images in DIR
//   aim-probe --config FILE --export-hub DIR [--probe FILE] trunk + saved attentive probe as a
//                                                           hub model directory (from_pretrained)
//   aim-probe --config FILE --dry-run                       validate, print the trainable parameters
// The config is an aim-train config (the model section names the architecture; the probe
// section the weights, data and recipe). A run's own config.yaml works as it is:
//   aim-probe --config runs/x/config.yaml probe.weights=runs/x
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "aim/config/run_config.h"
#include "aim/dist/communicator.h"
#include "aim/dist/dist_env.h"
#include "aim/dist/local_launcher.h"
#include "aim/error.h"
#include "aim/probe/probe_plan.h"
#include "aim/probe/probe_runner.h"
#include "aim/runtime/device.h"
#include "aim/train/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"Train and evaluate probes on a frozen AIM trunk"};
  std::string config_path, probe_path, predict_dir, export_hub_dir;
  std::vector<std::string> overrides;
  bool eval_only = false, dry_run = false;
  int nproc = 0, top = 5;
  app.add_option("--config", config_path, "YAML config (model + probe sections)")->required();
  app.add_option("overrides", overrides, "key=value overrides by dotted path, e.g. probe.weights=runs/x");
  app.add_flag("--eval-only", eval_only, "Evaluate a saved probe on probe.val instead of training");
  app.add_option("--probe", probe_path, "Probe weights for --eval-only/--predict (default <probe out_dir>/probe.safetensors)");
  app.add_option("--predict", predict_dir, "Print the top classes of every image file in this directory and its subfolders");
  app.add_option("--top", top, "Classes printed per image with --predict")->check(CLI::Range(1, 1000));
  app.add_option("--export-hub", export_hub_dir,
                 "Write probe.weights' trunk and the saved attentive probe (--probe) as a hub model directory");
  app.add_flag("--dry-run", dry_run, "Validate the config, print the probe's trainable parameters (LoRA included), exit");
  app.add_option("--nproc-per-node", nproc, "Start N local ranks (CPU: Gloo, CUDA: NCCL)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (nproc > 0) {
      if (!predict_dir.empty()) throw aim::Error("--predict runs in one process; drop --nproc-per-node");
      if (!export_hub_dir.empty()) throw aim::Error("--export-hub runs in one process; drop --nproc-per-node");
      std::vector<std::string> args = {argv[0], "--config", config_path};
      if (eval_only) args.push_back("--eval-only");
      if (!probe_path.empty()) args.insert(args.end(), {"--probe", probe_path});
      args.insert(args.end(), overrides.begin(), overrides.end());
      return aim::dist::launch_local(nproc, args);
    }
    const auto env = aim::dist::dist_env_from_environment();
    if (env.rank != 0) spdlog::set_level(spdlog::level::warn);
    auto cfg = aim::config::load_run_config(config_path, overrides);
    // Evaluating or applying a saved probe never reads probe.train.
    aim::config::validate_probe(cfg, env.world_size, /*check_paths=*/true,
                                /*needs_train_split=*/!eval_only && predict_dir.empty() && export_hub_dir.empty());
    if (probe_path.empty()) probe_path = aim::probe::probe_out_dir(cfg) + "/probe.safetensors";

    if (dry_run) {
      std::cout << aim::probe::describe_trainable(cfg);
      return 0;
    }
    if (!export_hub_dir.empty()) {
      aim::probe::export_hub_from_files(cfg, probe_path, export_hub_dir);
      std::cout << "hub model directory written to " << export_hub_dir
                << " (config.json, model.safetensors, README.md)\n";
      return 0;
    }

    if (!predict_dir.empty()) {
      const auto names = aim::probe::class_names(cfg);
      for (const auto& p : aim::probe::predict_folder(cfg, probe_path, predict_dir, top)) {
        std::cout << p.file;
        if (!p.error.empty()) {
          std::cout << "\terror: " << p.error << "\n";
          continue;
        }
        for (const auto& [cls, prob] : p.top) {
          std::cout << "\t" << cls;
          if (cls < static_cast<int64_t>(names.size())) std::cout << ":" << names[cls];
          std::cout << fmt::format(" {:.4f}", prob);
        }
        std::cout << "\n";
      }
      return 0;
    }

    const auto device = aim::runtime::select_device(cfg.train.device, env.local_rank, env.local_world_size);
    aim::runtime::pin_current_device(device);
    std::unique_ptr<aim::dist::Communicator> comm;
    if (env.distributed()) comm = aim::dist::connect(env, aim::train::connect_options(cfg, device));
    if (eval_only) {
      auto r = aim::probe::evaluate_saved_probe(cfg, env, comm.get(), probe_path);
      if (env.rank == 0)
        std::cout << fmt::format("{}: {} images, {} classes: top-1 {:.2f} %, top-5 {:.2f} %, loss {:.4f}\n", probe_path,
                                 r.samples, r.classes, 100 * r.top1, 100 * r.top5, r.loss);
      return 0;
    }
    auto r = aim::probe::run_probe(cfg, env, comm.get());
    if (env.rank == 0) {
      // sel_top1: on the held-out part of probe.train the best head is chosen on.
      const bool held_out = r.selection == "train_holdout";
      std::cout << fmt::format("{:>10} {:>10} {:>11} {:>9}{} {:>8} {:>8}\n", "lr", "wd", "train_loss", "val_loss",
                               held_out ? fmt::format(" {:>10}", "sel_top1 %") : std::string(), "top1 %", "top5 %");
      for (size_t i = 0; i < r.heads.size(); ++i) {
        const auto& h = r.heads[i];
        std::cout << fmt::format("{:>10.3g} {:>10.3g} {:>11.4f} {:>9.4f}{} {:>8.2f} {:>8.2f}{}\n", h.lr, h.weight_decay,
                                 h.train_loss, h.val_loss,
                                 held_out ? fmt::format(" {:>10.2f}", 100 * h.select_top1) : std::string(),
                                 100 * h.top1, 100 * h.top5, i == r.best ? "  <- best" : "");
      }
      std::cout << (held_out ? fmt::format("best head chosen on {} held-out images of probe.train "
                                           "(probe.select_fraction); top-1 and top-5 are on probe.val\n",
                                           r.select_samples)
                             : std::string("best head chosen on probe.val itself, the split it is reported on: "
                                           "its top-1 is the grid's maximum there, an optimistic number\n"));
      const auto& b = r.heads[r.best];
      std::cout << fmt::format("probe ({}, {}): top-1 {:.2f} %, top-5 {:.2f} % on {} images ({} classes); "
                               "results in {}/results.json\n",
                               cfg.probe.kind, r.weights, 100 * b.top1, 100 * b.top5, r.val_samples, r.classes,
                               r.out_dir);
    }
    return 0;
  } catch (const aim::Error& e) {
    std::cerr << "aim-probe: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "aim-probe: internal error: " << e.what() << std::endl;
    return 3;
  }
}
