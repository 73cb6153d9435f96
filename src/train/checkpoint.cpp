#include "aim/train/checkpoint.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "aim/compat.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"

namespace fs = std::filesystem;

namespace aim::train {
namespace {

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step_%09lld", static_cast<long long>(step));
  return buf;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw Error("cannot read '" + p.string() + "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error("'" + p.string() + "' is not valid JSON: " + e.what());
  }
}

// Persists renames inside `dir` across power loss.
void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> optimizer_state(const torch::optim::AdamW& opt) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      auto it = opt.state().find(compat::optimizer_state_key(groups[g].params()[i]));
      if (it == opt.state().end()) continue;
      const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      const std::string prefix = "optim.g" + std::to_string(g) + ".p" + std::to_string(i) + ".";
      out.emplace_back(prefix + "step", torch::tensor({s.step()}, torch::kInt64));
      out.emplace_back(prefix + "exp_avg", s.exp_avg());
      out.emplace_back(prefix + "exp_avg_sq", s.exp_avg_sq());
    }
  return out;
}

void load_optimizer_state(torch::optim::AdamW& opt, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                          const std::string& source) {
  std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
  auto& groups = opt.param_groups();
  opt.state().clear();
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      const std::string prefix = "optim.g" + std::to_string(g) + ".p" + std::to_string(i) + ".";
      auto step = by_name.find(prefix + "step");
      if (step == by_name.end()) continue;  // parameter never updated yet
      const auto& p = groups[g].params()[i];
      auto m = by_name.at(prefix + "exp_avg"), v = by_name.at(prefix + "exp_avg_sq");
      if (m.sizes() != p.sizes() || v.sizes() != p.sizes())
        throw Error("optimizer state in '" + source + "' does not match parameter " + prefix + " (model changed?)");
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(step->second.item<int64_t>());
      s->exp_avg(m.to(p.device(), p.scalar_type()).clone());
      s->exp_avg_sq(v.to(p.device(), p.scalar_type()).clone());
      opt.state()[compat::optimizer_state_key(p)] = std::move(s);
    }
}

CheckpointManager::CheckpointManager(std::string out_dir, int rank, int world_size, int keep)
    : dir_((fs::path(out_dir) / "checkpoints").string()), rank_(rank), world_size_(world_size), keep_(std::max(1, keep)) {
  fs::create_directories(dir_);
}

std::vector<std::string> CheckpointManager::list() const {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const auto name = e.path().filename().string();
    if (e.is_directory() && name.rfind("step_", 0) == 0 && name.find('.') == std::string::npos) out.push_back(e.path().string());
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

void CheckpointManager::save(int64_t step, const torch::nn::Module& model, const torch::optim::AdamW& opt,
                             const nlohmann::json& loader_state, const nlohmann::json& meta, dist::Communicator* comm) {
  const fs::path partial = fs::path(dir_) / (step_name(step) + ".partial");
  const fs::path final_dir = fs::path(dir_) / step_name(step);
  if (rank_ == 0) {
    fs::remove_all(partial);
    fs::create_directories(partial);
  }
  if (comm) comm->barrier();
  io::write_file_atomic((partial / ("loader_rank" + std::to_string(rank_) + ".json")).string(), loader_state.dump());
  if (rank_ == 0) {
    io::NamedTensors tensors;
    for (auto& [n, t] : io::state_dict(model)) tensors.emplace_back("model." + n, t);
    for (auto& [n, t] : optimizer_state(opt)) tensors.emplace_back(n, t);
    io::save_safetensors((partial / "state.safetensors").string(), tensors);
  }
  if (comm) comm->barrier();
  if (rank_ == 0) {
    nlohmann::json m = meta;
    m["step"] = step;
    m["world_size"] = world_size_;
    io::write_file_atomic((partial / "meta.json").string(), m.dump(2));
    fs::remove_all(final_dir);
    fs::rename(partial, final_dir);
    fsync_dir(dir_);
    auto all = list();
    for (size_t i = static_cast<size_t>(keep_); i < all.size(); ++i) fs::remove_all(all[i]);
  }
  if (comm) comm->barrier();
}

std::optional<ResumePoint> CheckpointManager::restore_latest(torch::nn::Module& model, torch::optim::AdamW& opt) {
  for (const auto& path : list()) {
    try {
      const fs::path dir(path);
      auto meta = read_json(dir / "meta.json");
      const int saved_world = meta.at("world_size").get<int>();
      // Every rank reads every loader file, so all ranks agree on which checkpoint is usable.
      std::vector<nlohmann::json> loaders;
      for (int r = 0; r < saved_world; ++r) loaders.push_back(read_json(dir / ("loader_rank" + std::to_string(r) + ".json")));
      auto file = io::load_safetensors((dir / "state.safetensors").string());
      io::NamedTensors model_tensors, optim_tensors;
      for (auto& [n, t] : file.tensors) {
        if (n.rfind("model.", 0) == 0) model_tensors.emplace_back(n.substr(6), t);
        else optim_tensors.emplace_back(n, t);
      }
      io::load_state_dict(model, model_tensors, (dir / "state.safetensors").string());
      load_optimizer_state(opt, optim_tensors, (dir / "state.safetensors").string());
      ResumePoint rp;
      rp.step = meta.at("step").get<int64_t>();
      rp.meta = meta;
      rp.path = path;
      rp.loader = saved_world == world_size_ ? loaders.at(rank_) : loaders.at(0);
      if (saved_world != world_size_)
        spdlog::warn("checkpoint {} was written with {} ranks, resuming with {}: random-access data resumes exactly, "
                     "streaming shards restart their per-rank split", path, saved_world, world_size_);
      return rp;
    } catch (const std::exception& e) {
      spdlog::warn("checkpoint {} is unusable ({}); falling back to an older one", path, e.what());
    }
  }
  return std::nullopt;
}

}  // namespace aim::train
