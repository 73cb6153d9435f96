// aim-bench-checkpoint: saves and restores a training state of a given size on N local CPU
// ranks (Gloo), with the sharded checkpoints (synchronous and asynchronous) and, side by side,
// the single-writer save of earlier versions (rank 0 writes the weights single-threaded while
// the other ranks wait; every rank reads the whole weight file back). Prints the blocking
// pause per save, the write and restore rates, each rank's peak RSS while restoring, the
// time from process start to a restored state, and an extrapolation to aim-7b on 8 ranks from
// the measured rates and stated device figures (docs/benchmarks.md).
//   aim-bench-checkpoint --nproc 2 --gb 2 --dir /tmp/ckpt-bench
#include <fcntl.h>
#include <unistd.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "aim/dist/communicator.h"
#include "aim/dist/dist_env.h"
#include "aim/dist/local_launcher.h"
#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/model/model_config.h"
#include "aim/model/model_stats.h"
#include "aim/optim/optimizer.h"
#include "aim/runtime/process_clock.h"
#include "aim/data/loader_state.h"
#include "aim/train/checkpoint.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// VmRSS / VmHWM of this process in bytes.
double status_bytes(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string k; in >> k;) {
    double kb = 0;
    if (k == key && in >> kb) return kb * 1024;
  }
  return -1;
}
// Starts a new peak-RSS measurement from the current RSS (Linux: clear_refs 5).
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// A "model" of `params` fp32 parameters in 16 tensors, and its AdamW (replicated, or this
// rank's pieces as train.sharding slices them) with every moment filled.
struct State {
  std::shared_ptr<torch::nn::Module> model = std::make_shared<torch::nn::Module>();
  std::unique_ptr<torch::optim::AdamW> opt;
  std::vector<aim::train::ShardPiece> shards;
  State(int64_t params, bool sharded, int rank, int world, bool fill) {
    const int64_t cols = 4096, rows = std::max<int64_t>(1, params / 16 / cols);
    torch::manual_seed(1);
    for (int i = 0; i < 16; ++i)
      model->register_parameter("w" + std::to_string(i), fill ? torch::randn({rows, cols}) : torch::zeros({rows, cols}));
    std::vector<torch::Tensor> leaves;
    if (sharded) {
      int64_t total = 0, offset = 0;
      for (auto& p : model->parameters()) total += p.numel();
      const auto [lo, hi] = aim::train::shard_range(total, rank, world);
      int64_t k = 0;
      for (auto& p : model->parameters()) {
        const int64_t a = std::max(lo, offset) - offset, b = std::min(hi, offset + p.numel()) - offset;
        offset += p.numel();
        if (a < b) {
          auto leaf = p.detach().view({-1}).slice(0, a, b);
          leaf.requires_grad_(true);
          shards.push_back({k, a, b, leaf});
          leaves.push_back(leaf);
        }
        ++k;
      }
    } else {
      leaves = model->parameters();
    }
    opt = aim::optim::make_adamw(leaves, {}, aim::optim::OptimConfig{});
    if (!fill) return;
    for (auto& l : leaves) l.mutable_grad() = torch::randn_like(l);
    opt->step();
    for (auto& l : leaves) l.mutable_grad() = torch::Tensor();
  }
  uint64_t bytes_per_rank() const {
    uint64_t b = 0;
    for (const auto& p : model->parameters()) b += p.numel() * 4;
    for (const auto& [k, s] : opt->state()) {
      const auto& st = static_cast<const torch::optim::AdamWParamState&>(*s);
      b += (st.exp_avg().numel() + st.exp_avg_sq().numel()) * 4;
    }
    return b;
  }
};

// The single-writer save of earlier aim versions: rank 0 writes the weights (and, replicated,
// the whole optimizer state) with save_safetensors; sharded, every rank its optimizer pieces.
void old_save(State& s, const std::string& dir, aim::dist::Communicator& comm) {
  if (comm.rank() == 0) fs::create_directories(dir);
  comm.barrier();
  aim::io::NamedTensors optim;
  for (const auto& [k, st_ptr] : s.opt->state()) {
    (void)k;
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*st_ptr);
    optim.emplace_back("optim." + std::to_string(optim.size()) + ".exp_avg", st.exp_avg());
    optim.emplace_back("optim." + std::to_string(optim.size()) + ".exp_avg_sq", st.exp_avg_sq());
  }
  if (!s.shards.empty())
    aim::io::save_safetensors(dir + "/optim_rank" + std::to_string(comm.rank()) + ".safetensors", optim);
  if (comm.rank() == 0) {
    aim::io::NamedTensors t;
    for (auto& [n, p] : aim::io::state_dict(*s.model)) t.emplace_back("model." + n, p);
    if (s.shards.empty()) t.insert(t.end(), optim.begin(), optim.end());
    aim::io::save_safetensors(dir + "/state.safetensors", t);
  }
  comm.barrier();
}

// Its restore: every rank reads the whole state file (and its own optimizer file).
uint64_t old_restore(State& s, const std::string& dir, aim::dist::Communicator& comm) {
  uint64_t bytes = fs::file_size(dir + "/state.safetensors");
  auto file = aim::io::load_safetensors(dir + "/state.safetensors");
  aim::io::NamedTensors weights;
  for (auto& [n, t] : file.tensors)
    if (n.rfind("model.", 0) == 0) weights.emplace_back(n.substr(6), t);
  aim::io::load_state_dict(*s.model, weights, "state.safetensors");
  if (!s.shards.empty()) {
    const std::string p = dir + "/optim_rank" + std::to_string(comm.rank()) + ".safetensors";
    bytes += fs::file_size(p);
    auto o = aim::io::load_safetensors(p);
  }
  comm.barrier();
  return bytes;
}

// Drops the files' pages from the page cache (they are clean after fsync), so restores read
// from the disk rather than from memory.
void evict(const std::string& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

void record(const std::string& dir, nlohmann::json j) {
  std::ofstream(dir + "/results.jsonl", std::ios::app) << j.dump() << "\n";
}

int run_rank(const std::string& phase, int64_t params, bool sharded, const std::string& dir, int threads) {
  const double t_process = aim::runtime::seconds_since_process_start();
  const auto env = aim::dist::dist_env_from_environment();
  auto comm = aim::dist::connect(env, aim::dist::ConnectOptions{});
  const int r = env.rank, w = env.world_size;
  aim::train::CheckpointOptions o;
  o.writer_threads = threads;
  if (phase == "save") {
    State s(params, sharded, r, w, /*fill=*/true);
    const double gb = s.bytes_per_rank() / 1e9;
    auto t0 = Clock::now();
    old_save(s, dir + "/old", *comm);
    record(dir, {{"phase", "old-save"}, {"rank", r}, {"pause", since(t0)}, {"state_gb", gb}});
    for (const bool async : {false, true}) {
      o.async = async;
      aim::train::CheckpointManager m(dir + (async ? "/async" : "/sync"), r, w, 1, "bench", "", o);
      comm->barrier();
      t0 = Clock::now();
      aim::data::LoaderState position;  // no data: an empty position of this rank
      position.rank = r;
      position.world_size = w;
      const auto st = m.save(1, *s.model, *s.opt, nlohmann::json(position), {}, comm.get(), s.shards);
      const double pause = since(t0);
      const auto done = m.finish(comm.get());
      record(dir, {{"phase", async ? "async-save" : "sync-save"}, {"rank", r}, {"pause", pause},
                   {"snapshot", st.snapshot}, {"write", async ? done.write : st.write},
                   {"bytes", async ? done.bytes : st.bytes}, {"total", since(t0)}});
    }
    return 0;
  }
  State s(params, sharded, r, w, /*fill=*/false);
  comm->barrier();
  const double base = status_bytes("VmRSS:");
  reset_peak_rss();
  const auto t0 = Clock::now();
  uint64_t bytes = 0;
  if (phase == "restore-old") {
    bytes = old_restore(s, dir + "/old", *comm);
  } else {
    aim::train::CheckpointManager m(dir + "/async", r, w, 1, "bench", "", o);
    auto rp = m.restore_latest(*s.model, *s.opt, false, [](const nlohmann::json&) {}, comm.get(), s.shards);
    if (!rp) throw aim::Error("no checkpoint to restore in " + dir + "/async");
    bytes = rp->bytes_read;
  }
  const double seconds = since(t0);
  record(dir, {{"phase", phase}, {"rank", r}, {"seconds", seconds}, {"bytes", bytes},
               {"peak_rss", status_bytes("VmHWM:")}, {"base_rss", base}, {"final_rss", status_bytes("VmRSS:")},
               {"to_restored", aim::runtime::seconds_since_process_start()}, {"start", t_process}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Time checkpoint saves and restores on N local CPU ranks, sharded vs single-writer"};
  int nproc = 2, threads = 2;
  double gb = 2, disk_gbps = 5, d2h_gbps = 20, gather_gbps = 100;
  std::string dir = "/tmp/aim-bench-checkpoint", sharding = "optimizer", phase;
  app.add_option("--nproc", nproc, "Ranks")->capture_default_str();
  app.add_option("--gb", gb, "State size in GB: 4 B weights + 8 B AdamW moments per parameter")->capture_default_str();
  app.add_option("--dir", dir, "Scratch directory (emptied first)")->capture_default_str();
  app.add_option("--sharding", sharding, "none | optimizer: how the ranks hold AdamW's state")->capture_default_str();
  app.add_option("--threads", threads, "Writer threads per rank")->capture_default_str();
  app.add_option("--disk-gbps", disk_gbps, "Extrapolation: a node's checkpoint storage write/read GB/s")->capture_default_str();
  app.add_option("--d2h-gbps", d2h_gbps, "Extrapolation: pinned device-to-host copy GB/s per GPU")->capture_default_str();
  app.add_option("--gather-gbps", gather_gbps, "Extrapolation: all-gather GB/s per GPU (NVLink)")->capture_default_str();
  app.add_option("--phase", phase, "(internal: what a rank runs)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  const int64_t params = static_cast<int64_t>(gb * 1e9 / 12);
  try {
    if (!phase.empty()) return run_rank(phase, params, sharding != "none", dir, threads);
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::vector<std::string> base_args = {argv[0], "--gb", std::to_string(gb), "--dir", dir, "--sharding", sharding,
                                          "--threads", std::to_string(threads)};
    for (const std::string ph : {"save", "restore-old", "restore-new"}) {
      if (ph != "save") evict(dir);
      auto args = base_args;
      args.insert(args.end(), {"--phase", ph});
      if (aim::dist::launch_local(nproc, args) != 0) throw aim::Error("phase " + ph + " failed");
    }
    // Aggregate: the slowest rank of each phase.
    std::map<std::string, nlohmann::json> worst;
    std::ifstream in(dir + "/results.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      auto& w = worst[j["phase"].get<std::string>()];
      for (auto it = j.begin(); it != j.end(); ++it)
        if (it.value().is_number() && (!w.contains(it.key()) || it.value().get<double>() > w[it.key()].get<double>()))
          w[it.key()] = it.value();
    }
    const double state_gb = worst["old-save"]["state_gb"].get<double>();
    const double node_gb = 12.0 * params / 1e9;
    std::printf("state %.2f GB (%lld parameters: fp32 weights + AdamW moments), %d CPU ranks, sharding=%s, %d writer "
                "threads per rank; rank-local state %.2f GB\n\n",
                node_gb, static_cast<long long>(params), nproc, sharding.c_str(), threads, state_gb);
    std::printf("%-34s %14s %14s %12s\n", "save", "blocking pause", "write", "write GB/s");
    const double old_pause = worst["old-save"]["pause"].get<double>();
    const double old_rate = 12.0 * params / 1e9 / old_pause;  // every rank's bytes
    // What rank 0 itself writes: the weights, and the whole optimizer state (replicated) or its slice.
    const double rank0_rate = (4.0 * params + 8.0 * params / (sharding == "none" ? 1 : nproc)) / 1e9 / old_pause;
    std::printf("%-34s %12.2f s %12.2f s %12.2f\n", "single writer (earlier aim)", old_pause, old_pause, old_rate);
    for (const char* p : {"sync-save", "async-save"}) {
      const auto& j = worst[p];
      const double write = j["write"].get<double>(), bytes = j["bytes"].get<double>();
      std::printf("%-34s %12.2f s %12.2f s %12.2f (per rank %.2f)\n",
                  p == std::string("sync-save") ? "sharded, synchronous" : "sharded, asynchronous",
                  j["pause"].get<double>(), write, nproc * bytes / 1e9 / write, bytes / 1e9 / write);
    }
    std::printf("\n%-34s %14s %14s %16s %16s\n", "restore (files evicted from cache)", "restore", "GB/s (node)",
                "peak RSS/rank", "process->restored");
    for (const char* p : {"restore-old", "restore-new"}) {
      const auto& j = worst[p];
      const double s = j["seconds"].get<double>();
      std::printf("%-34s %12.2f s %14.2f %13.2f GB %14.2f s\n",
                  p == std::string("restore-old") ? "every rank reads the whole weights" : "sharded: own parts + all-gather",
                  s, nproc * j["bytes"].get<double>() / 1e9 / s, j["peak_rss"].get<double>() / 1e9,
                  j["to_restored"].get<double>());
      std::printf("%-34s   (peak RSS above the process before the restore: %.2f GB; bytes read per rank: %.2f GB)\n",
                  "", (j["peak_rss"].get<double>() - j["base_rss"].get<double>()) / 1e9, j["bytes"].get<double>() / 1e9);
    }
    // aim-7b on one node of 8 GPUs: the measured rates where the work is the same, the stated
    // device figures where a GPU or NVMe does it.
    const double p7 = static_cast<double>(aim::model::count_parameters(aim::model::preset_config("aim-7b")).total());
    const double per_rank = 12 * p7 / 8 / 1e9, weights = 4 * p7 / 1e9, node = 12 * p7 / 1e9;
    const auto& as = worst["async-save"];
    // 8 ranks writing at the rate measured per rank, at most the disk's.
    const double write_rate = std::min(disk_gbps, 8 * as["bytes"].get<double>() / 1e9 / as["write"].get<double>());
    std::printf("\naim-7b (%.2f G parameters) on 8 ranks, assuming %.0f GB/s node storage, %.0f GB/s pinned device-to-host "
                "per GPU, %.0f GB/s all-gather per GPU:\n",
                p7 / 1e9, disk_gbps, d2h_gbps, gather_gbps);
    std::printf("  state %.1f GB (%.1f GB per rank)\n", node, per_rank);
    std::printf("  single writer: blocking pause %.0f s (rank 0 writes %.1f GB of weights at the measured %.2f GB/s, "
                "at most the disk's; the optimizer files in parallel)\n",
                (weights + 8 * p7 / 8 / 1e9) / std::min(disk_gbps, rank0_rate), weights, rank0_rate);
    std::printf("  sharded, asynchronous: blocking pause %.2f s (%.1f GB per rank at %.0f GB/s), then %.1f s of "
                "background writing (%.1f GB at %.1f GB/s)\n",
                per_rank / d2h_gbps, per_rank, d2h_gbps, node / write_rate, node, write_rate);
    const double rs = worst["restore-new"]["seconds"].get<double>();
    const double setup = worst["restore-new"]["to_restored"].get<double>() - rs;
    std::printf("  restore: %.1f s (each rank reads %.1f GB at %.1f GB/s per node, then all-gathers %.1f GB of weights), "
                "first step ~%.0f s after process start plus model build and NCCL setup (measured here: %.1f s of "
                "start-up)\n",
                node / disk_gbps + weights / gather_gbps, per_rank, disk_gbps, weights, node / disk_gbps + weights / gather_gbps + setup, setup);
    std::printf("  earlier restore: every rank reads the %.1f GB weight file: %.1f GB of reads per node, %.1f GB of "
                "host memory per rank\n",
                weights, 8 * weights, weights);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "aim-bench-checkpoint: " << e.what() << std::endl;
    return 1;
  }
}
