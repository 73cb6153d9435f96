#include "training_run.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include "aim/compat.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/optim/optimizer.h"
#include "aim/data/loader_state.h"
#include "aim/runtime/device.h"
#include "aim/train/memory_advice.h"
#include "aim/runtime/stop_request.h"
#include "aim/train/memory_plan.h"
#include "aim/train/prefix_sampler.h"
#include "aim/train/trainer.h"

namespace fs = std::filesystem;

namespace aim::train {
namespace {

void restore_and_agree(TrainingRun& run) {
  const auto& tc = run.cfg.train;
  // The loader position is checked with the rest of the checkpoint and applied only once every
  // rank has accepted it.
  auto check_loader = [&](const nlohmann::json& j) { run.loader->check_state(j.get<data::LoaderState>()); };
  if (auto rp = run.ckpt->restore_latest(*run.net, *run.opt, tc.resume == "force", check_loader, run.comm, run.shards)) {
    run.loader->load_state(rp->loader.get<data::LoaderState>());
    run.step = rp->step;
    run.resumed_from = rp->step;
    run.skipped_total = rp->meta.value("skipped_steps", int64_t(0));
    if (run.is_rank0()) {
      spdlog::info("resumed from {} (step {}){}: read {:.2f} GB of parts in {:.1f} s on rank 0", rp->path, rp->step,
                   rp->foreign ? " written by a different config (train.resume=force)" : "", rp->bytes_read / 1e9,
                   rp->seconds);
      // Say what differs from the config the checkpoint was written with, and what that does:
      // a changed train.steps, say, silently moves the learning-rate schedule.
      std::vector<std::string> changes;
      try {
        changes = describe_config_changes(rp->meta.value("config", std::string()), config::to_yaml(run.cfg));
      } catch (const std::exception& e) {
        changes = {std::string("(the checkpoint's stored config is unreadable: ") + e.what() + ")"};
      }
      for (const auto& c : changes)
        if (rp->foreign) spdlog::warn("  changed since the checkpoint: {}", c);
        else spdlog::info("  changed since the checkpoint (same math): {}", c);
    }
  }
  // Identical weights on every rank: after the restore (or the seeded initialisation) rank 0's
  // are broadcast, and the restored state is confirmed by digest, so a rank that resumed
  // differently cannot go on silently.
  if (run.comm) {
    torch::NoGradGuard ng;
    if (run.resumed_from >= 0)
      run.comm->check_same_on_all_ranks(parameter_digest(*run.net),
                                        "the restored weights (step " + std::to_string(run.step) + ")");
    for (auto& p : run.params) run.comm->broadcast(p, 0);
  }
}

}  // namespace

std::unique_ptr<TrainingRun> start_training_run(const config::RunConfig& cfg_in, const dist::DistEnv& env,
                                                dist::Communicator* comm) {
  auto run = std::make_unique<TrainingRun>();
  run->cfg = cfg_in;
  run->env = env;
  const auto& cfg = run->cfg;
  const auto& tc = cfg.train;
  config::validate(cfg, env.world_size);

  run->device = runtime::select_device(tc.device, env.local_rank, env.local_world_size);
  runtime::pin_current_device(run->device);  // before any CUDA work: this rank's GPU, not GPU 0
  const bool cuda = run->device.is_cuda();
  run->bf16 = cuda && tc.precision == "bf16";
  if (!cuda && tc.precision == "bf16" && run->is_rank0())
    spdlog::info("train.precision=bf16 applies on CUDA; training in fp32 on CPU");
  // threads=0 keeps LibTorch's default: more OpenMP threads spin-wait and slow OpenBLAS's
  // GEMM threads on CPU (see docs/benchmarks.md).
  if (tc.threads > 0) at::set_num_threads(tc.threads);

  run->comm = comm;
  if (env.distributed() && !comm) {
    run->owned_comm = dist::connect(env, connect_options(cfg, run->device));
    run->comm = run->owned_comm.get();
  }
  if (run->comm) run->comm->check_same_on_all_ranks(config::fingerprint(cfg), "the resolved config");

  // The plan before anything is allocated: a run that cannot fit stops here with what would,
  // instead of dying of out-of-memory minutes later. Every rank must take the same decision.
  const auto plan = plan_memory_for_config(cfg, env.world_size, env.local_world_size);
  if (run->is_rank0())
    spdlog::info("{}{}{}", describe_run(cfg, env.world_size), describe_memory_plan(plan),
                 describe_fitting_options(cfg, plan));
  bool refuse = tc.memory_check == "enforce" && !plan.fits();
  if (run->comm) refuse = run->comm->all_reduce_sum_host({refuse ? 1.0 : 0.0}).at(0) > 0;
  if (refuse && plan.fits())
    throw Error("another rank's memory plan does not fit its budget (see its error); train.memory_check=warn starts "
                "anyway");
  check_memory_plan(cfg, plan, run->is_rank0());

  torch::manual_seed(tc.seed);
  run->net = model::AimPretrainModel(cfg.model);
  run->net->to(run->device);
  run->net->set_activation_checkpointing(tc.activation_checkpointing == "full");
  run->params = run->net->parameters();
  if (tc.sharding != "none") shard_optimizer(*run);
  else run->opt = optim::make_adamw(*run->net, cfg.optim);
  run->ckpt = std::make_unique<CheckpointManager>(tc.out_dir, env.rank, env.world_size,
                                                  static_cast<int>(tc.keep_checkpoints), config::run_identity(cfg),
                                                  config::to_yaml(cfg), checkpoint_options(*run));
  if (run->ckpt->options().async) {
    int64_t n = 0;
    for (const auto& p : run->params) n += p.numel();
    run->ckpt->preallocate(n);  // before the first step: pinned memory is slow to allocate
  }
  // Before the loader's threads start decoding on the same cores.
  run->peak = device_peak_flops(cfg, cuda);
  if (run->is_rank0()) spdlog::info("MFU is measured against {}", run->peak.source);
  run->loader = std::make_unique<data::Loader>(config::loader_config(cfg, true, env.rank, env.world_size));
  // A rank asked to stop while its data stalls (a remote shard) gives the step up; the step's
  // reduction tells every rank, and the loop checkpoints the last finished step (train_step.cpp).
  run->loader->set_interrupt([] { return runtime::stop_signal() != 0; });
  restore_and_agree(*run);
  if (run->is_rank0()) {
    // Written only now: a run refused above (another config's checkpoints, a plan that does
    // not fit) must leave the run directory's config.yaml as the run that owns it wrote it.
    const std::string yaml_path = (fs::path(tc.out_dir) / "config.yaml").string();
    io::write_file_atomic(yaml_path, config::to_yaml(cfg));
    // Every key is in the file (and in --dry-run's output); the log keeps to the summary.
    spdlog::info("resolved config (every key, after presets and overrides): {}", yaml_path);
  }

  if (run->comm && tc.sharding == "gradients")
    run->grad_shards = std::make_unique<dist::ShardedGradientSync>(
        run->params, shard_bounds(run->params, env.world_size), *run->comm, tc.bucket_mb);
  else if (run->comm)
    run->grad_sync = std::make_unique<dist::GradientSync>(run->params, *run->comm, tc.bucket_mb);
  if (run->is_rank0())
    run->metrics = std::make_unique<MetricsLog>((fs::path(tc.out_dir) / "metrics.jsonl").string(), run->step,
                                                tc.tensorboard ? (fs::path(tc.out_dir) / "tb").string() : "");
  run->normalize = data::channel_affine(cfg.model.channels, run->device, data::channel_mean(cfg.model.channels),
                                        data::channel_std(cfg.model.channels));
  return run;
}

loss::LossTerms forward_loss(TrainingRun& run, const data::Batch& batch, uint64_t prefix_seed) {
  const auto& mc = run.cfg.model;
  auto images = data::normalize_images(batch.images, run.normalize);
  // Host prefix: the model reads it on the CPU (loss rows, mask bounds) with no GPU sync.
  // Pinned on CUDA so the mask's copy of it to the device does not block the host.
  auto prefix = prefix_lengths(prefix_seed, batch.index, mc.num_tokens(), mc.attention);
  if (run.device.is_cuda()) prefix = prefix.pin_memory();
  std::optional<compat::AutocastGuard> autocast;  // left (and its cache cleared) before backward
  if (run.bf16) autocast.emplace(compat::bf16_training_autocast(run.cfg.train.activation_checkpointing == "full"));
  return run.net->forward(images, prefix, model::HeadTokens::kLossOnly).loss;
}

SaveTimes save_checkpoint(TrainingRun& run) {
  nlohmann::json meta = {{"skipped_steps", run.skipped_total}, {"fingerprint", config::fingerprint(run.cfg)},
                         {"images_seen", run.step * run.cfg.train.batch_size}};
  const auto t = run.ckpt->save(run.step, *run.net, *run.opt, run.loader->state(), meta, run.comm, run.shards);
  run.last_checkpoint = std::chrono::steady_clock::now();  // train.ckpt_every_min counts from the snapshot
  if (!run.is_rank0()) return t;
  if (run.ckpt->in_flight())
    spdlog::info("checkpoint of step {}: snapshot taken in {:.2f} s{}; writing it in the background", run.step,
                 t.snapshot, t.waited > 0.01 ? fmt::format(" (after waiting {:.1f} s for the previous save)", t.waited) : "");
  else
    spdlog::info("checkpoint of step {} saved in {} ({:.1f} s: snapshot {:.2f} s, write {:.1f} s, {:.3f} GB per rank)",
                 run.step, run.ckpt->directory(), t.waited + t.snapshot + t.write + t.finish, t.snapshot, t.write,
                 t.bytes / 1e9);
  return t;
}

SaveTimes complete_checkpoint(TrainingRun& run) {
  const auto t = run.ckpt->finish(run.comm);
  if (t.step >= 0 && run.is_rank0())
    spdlog::info("checkpoint of step {} complete: {:.3f} GB per rank written in {:.2f} s ({:.2f} GB/s per rank)", t.step,
                 t.bytes / 1e9, t.write, t.write > 0 ? t.bytes / 1e9 / t.write : 0.0);
  return t;
}

CheckpointOptions checkpoint_options(TrainingRun& run) {
  const auto& tc = run.cfg.train;
  CheckpointOptions o;
  o.pinned = run.device.is_cuda();
  int64_t params = 0;
  for (const auto& p : run.params) params += p.numel();
  run.ckpt_snapshot_bytes = checkpoint_snapshot_bytes(params, run.env.world_size, o.chunk_bytes);
  std::string why;
  bool fits = checkpoint_async_fits(run.ckpt_snapshot_bytes, run.env.local_world_size, &why);
  // Every rank saves the same way (a synchronous save completes inside save(), an asynchronous
  // one after a later step's vote): auto is on only where it fits on every rank.
  if (run.comm && tc.ckpt_async == "auto" &&
      run.comm->all_reduce_sum_host({fits ? 0.0 : 1.0}).at(0) > 0 && fits) {
    fits = false;
    why = "another rank's host memory does not hold its snapshot";
  }
  o.async = tc.ckpt_async == "true" || (tc.ckpt_async == "auto" && fits);
  if (run.is_rank0()) {
    if (tc.ckpt_async == "auto")
      spdlog::info("checkpoints: {} ({})", o.async ? "asynchronous" : "synchronous: snapshots would not fit", why);
    else if (o.async && !fits)
      spdlog::warn("checkpoints: asynchronous (train.ckpt_async=true) although {}", why);
  }
  return o;
}

}  // namespace aim::train
