// aim-probe: attentive / linear probes on a frozen AIM trunk (spec §8).
//   aim-probe --config FILE [key=value ...]                 train the probe grid, write results
//   aim-probe --config FILE --eval-only [--probe FILE]      evaluate a saved probe on probe.val
//   aim-probe --config FILE --predict DIR [--top K]         classify the images in DIR
//   aim-probe --config FILE --export-hub DIR [--probe FILE] trunk + saved attentive probe as a
//                                                           hub model directory (from_pretrained)
//   aim-probe --config FILE --dry-run                       validate, print the trainable parameters
//   aim-probe --config FILE --extract DIR [--tokens]        features of probe.train / probe.val to disk
//   aim-probe --convert IN OUT                              a torch.save file (.pth/.pt/.bin) to safetensors
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
#include "aim/io/weights_file.h"
#include "aim/probe/feature_export.h"
#include "aim/probe/probe_plan.h"
#include "aim/probe/probe_runner.h"
#include "aim/runtime/device.h"
#include "aim/train/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"Train and evaluate probes on a frozen AIM trunk"};
  std::string config_path, probe_path, predict_dir, export_hub_dir, extract_dir;
  std::vector<std::string> overrides, convert;
  bool eval_only = false, dry_run = false, tokens = false;
  int nproc = 0, top = 5;
  int64_t shard_size = 0;
  auto* config_opt = app.add_option("--config", config_path, "YAML config (model + probe sections)");
  app.add_option("--convert", convert,
                 "IN OUT: write the state dict of a torch.save file (.pth, .pt, pytorch_model.bin) as safetensors")
      ->expected(2);
  app.add_option("--extract", extract_dir,
                 "Write the features of probe.train and probe.val to this directory (safetensors shards + index.json)");
  app.add_flag("--tokens", tokens, "With --extract: also the per-patch features (float16)");
  app.add_option("--shard-size", shard_size, "With --extract: samples per shard file (default: ~512 MB per shard)");
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
    if (!convert.empty()) {
      if (config_opt->count() > 0) throw aim::Error("--convert needs no --config");
      std::cout << aim::io::convert_to_safetensors(convert[0], convert[1]) << "\n";
      return 0;
    }
    if (config_opt->count() == 0) throw aim::Error("--config is required (a YAML config with model and probe sections)");
    if (nproc > 0) {
      if (!predict_dir.empty()) throw aim::Error("--predict runs in one process; drop --nproc-per-node");
      if (!export_hub_dir.empty()) throw aim::Error("--export-hub runs in one process; drop --nproc-per-node");
      std::vector<std::string> args = {argv[0], "--config", config_path};
      if (eval_only) args.push_back("--eval-only");
      if (!extract_dir.empty()) args.insert(args.end(), {"--extract", extract_dir});
      if (tokens) args.push_back("--tokens");
      if (shard_size > 0) args.insert(args.end(), {"--shard-size", std::to_string(shard_size)});
      if (!probe_path.empty()) args.insert(args.end(), {"--probe", probe_path});
      args.insert(args.end(), overrides.begin(), overrides.end());
      return aim::dist::launch_local(nproc, args);
    }
    const auto env = aim::dist::dist_env_from_environment();
    if (env.rank != 0) spdlog::set_level(spdlog::level::warn);
    auto cfg = aim::config::load_run_config(config_path, overrides);
    // Evaluating or applying a saved probe never reads probe.train.
    aim::config::validate_probe(
        cfg, env.world_size, /*check_paths=*/true,
        /*needs_train_split=*/!eval_only && predict_dir.empty() && export_hub_dir.empty() && extract_dir.empty());
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
      const auto names = aim::probe::prediction_class_names(cfg, probe_path);
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
    if (!extract_dir.empty()) {
      const auto splits = aim::probe::extract_features(cfg, env, comm.get(), {extract_dir, tokens, shard_size});
      if (env.rank == 0) {
        for (const auto& s : splits)
          std::cout << fmt::format("{}: {} sample{} in {} shard{}\n", s.name, s.samples, s.samples == 1 ? "" : "s",
                                   s.shards, s.shards == 1 ? "" : "s");
        std::cout << "features written to " << extract_dir << " (index.json lists the shards)\n";
      }
      return 0;
    }
    if (eval_only) {
      auto r = aim::probe::evaluate_saved_probe(cfg, env, comm.get(), probe_path);
      if (env.rank == 0)
        std::cout << fmt::format("{}: {} image{}, {} class{}: top-1 {:.2f} %{}, loss {:.4f}\n", probe_path, r.samples,
                                 r.samples == 1 ? "" : "s", r.classes, r.classes == 1 ? "" : "es", 100 * r.top1,
                                 r.classes > 5 ? fmt::format(", top-5 {:.2f} %", 100 * r.top5) : std::string(), r.loss);
      return 0;
    }
    auto r = aim::probe::run_probe(cfg, env, comm.get());
    if (env.rank == 0) std::cout << aim::probe::format_probe_report(r, cfg.probe);
    return 0;
  } catch (const aim::Error& e) {
    std::cerr << "aim-probe: error: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "aim-probe: internal error: " << e.what() << std::endl;
    return 3;
  }
}
