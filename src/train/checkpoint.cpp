#include "aim/train/checkpoint.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <map>

#include "aim/compat.h"
#include "aim/config/run_config.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/fnv1a.h"
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

namespace {

// AdamW state read from a checkpoint, checked, not yet in the optimizer.
struct StagedOptimizerState {
  std::vector<std::pair<torch::Tensor, std::unique_ptr<torch::optim::AdamWParamState>>> states;

  void commit(torch::optim::AdamW& opt) {
    opt.state().clear();
    for (auto& [p, s] : states) opt.state()[compat::optimizer_state_key(p)] = std::move(s);
    states.clear();
  }
};

StagedOptimizerState stage_optimizer_state(const torch::optim::AdamW& opt,
                                           const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                                           const std::string& source) {
  std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
  std::map<std::string, bool> used;
  StagedOptimizerState staged;
  const auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      const std::string prefix = "optim.g" + std::to_string(g) + ".p" + std::to_string(i) + ".";
      const std::array<std::string, 3> fields = {prefix + "step", prefix + "exp_avg", prefix + "exp_avg_sq"};
      const size_t present = std::count_if(fields.begin(), fields.end(), [&](const auto& f) { return by_name.count(f) > 0; });
      if (present == 0) continue;  // parameter never updated yet
      if (present != fields.size())
        throw Error("optimizer state in '" + source + "' is incomplete for " + prefix + " (has " +
                    std::to_string(present) + " of step, exp_avg, exp_avg_sq)");
      for (const auto& f : fields) used[f] = true;
      const auto& p = groups[g].params()[i];
      const auto& m = by_name.at(fields[1]);
      const auto& v = by_name.at(fields[2]);
      const auto& st = by_name.at(fields[0]);
      if (m.sizes() != p.sizes() || v.sizes() != p.sizes())
        throw Error("optimizer state in '" + source + "' does not match parameter " + prefix + " (model changed?)");
      if (st.numel() != 1) throw Error("optimizer state in '" + source + "': " + fields[0] + " is not a scalar");
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(st.item<int64_t>());
      s->exp_avg(m.to(p.device(), p.scalar_type()).clone());
      s->exp_avg_sq(v.to(p.device(), p.scalar_type()).clone());
      staged.states.emplace_back(p, std::move(s));
    }
  for (const auto& [name, t] : by_name)
    if (!used.count(name))
      throw Error("optimizer state in '" + source + "' has '" + name + "', which matches no parameter (model changed?)");
  return staged;
}

// Sharded AdamW state: every rank's file holds its pieces; a piece of this rank's layout is
// assembled from whichever saved pieces overlap it, so the world size may change.
std::vector<std::pair<std::string, torch::Tensor>> sharded_optimizer_state(const torch::optim::AdamW& opt,
                                                                           const std::vector<ShardPiece>& shards) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& s : shards) {
    auto it = opt.state().find(compat::optimizer_state_key(s.leaf));
    if (it == opt.state().end()) continue;
    const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    const std::string prefix = "optim.p" + std::to_string(s.param) + ".b" + std::to_string(s.begin) + ".";
    out.emplace_back(prefix + "step", torch::tensor({st.step()}, torch::kInt64));
    out.emplace_back(prefix + "exp_avg", st.exp_avg());
    out.emplace_back(prefix + "exp_avg_sq", st.exp_avg_sq());
  }
  return out;
}

StagedOptimizerState stage_sharded_state(const std::vector<ShardPiece>& shards, const std::vector<int64_t>& numels,
                                         const fs::path& dir, int saved_world) {
  StagedOptimizerState staged;
  if (shards.empty()) return staged;
  std::vector<int64_t> offset(numels.size() + 1, 0);
  for (size_t k = 0; k < numels.size(); ++k) offset[k + 1] = offset[k] + numels[k];
  const int64_t total = offset.back();
  const int64_t lo = offset[shards.front().param] + shards.front().begin;
  const int64_t hi = offset[shards.back().param] + shards.back().end;
  struct Saved {
    int64_t begin, step;
    torch::Tensor m, v;
  };
  std::map<int64_t, std::vector<Saved>> saved;  // by parameter
  for (int r = 0; r < saved_world; ++r) {
    const auto [rlo, rhi] = shard_range(total, r, saved_world);
    if (rhi <= lo || rlo >= hi) continue;  // only the files that overlap this rank's range
    const std::string path = (dir / ("optim_rank" + std::to_string(r) + ".safetensors")).string();
    std::map<std::string, torch::Tensor> by_name;
    for (auto& [n, t] : io::load_safetensors(path).tensors) by_name[n] = t;
    for (const auto& [name, t] : by_name) {
      long long k = 0, b = 0;
      char field[32] = {0};
      if (std::sscanf(name.c_str(), "optim.p%lld.b%lld.%31s", &k, &b, field) != 3)
        throw Error("optimizer state in '" + path + "' has '" + name + "', which is not a sharded piece");
      if (std::string(field) != "exp_avg") continue;
      const std::string prefix = "optim.p" + std::to_string(k) + ".b" + std::to_string(b) + ".";
      if (!by_name.count(prefix + "exp_avg_sq") || !by_name.count(prefix + "step"))
        throw Error("optimizer state in '" + path + "' is incomplete for " + prefix);
      if (k < 0 || k >= static_cast<long long>(numels.size()) || b < 0 || b + t.numel() > numels[k])
        throw Error("optimizer state in '" + path + "': " + prefix + " lies outside the model (model changed?)");
      saved[k].push_back({b, by_name.at(prefix + "step").item<int64_t>(), t, by_name.at(prefix + "exp_avg_sq")});
    }
  }
  for (const auto& s : shards) {
    const int64_t n = s.end - s.begin;
    auto m = torch::zeros({n}, s.leaf.options().requires_grad(false));
    auto v = torch::zeros({n}, s.leaf.options().requires_grad(false));
    int64_t covered = 0, step = -1;
    for (const auto& p : saved[s.param]) {
      const int64_t a = std::max(s.begin, p.begin), b = std::min(s.end, p.begin + p.m.numel());
      if (a >= b) continue;
      m.slice(0, a - s.begin, b - s.begin).copy_(p.m.slice(0, a - p.begin, b - p.begin));
      v.slice(0, a - s.begin, b - s.begin).copy_(p.v.slice(0, a - p.begin, b - p.begin));
      covered += b - a;
      step = p.step;
    }
    if (covered == 0) continue;  // never updated
    if (covered != n)
      throw Error("sharded optimizer state in '" + dir.string() + "' covers " + std::to_string(covered) + " of " +
                  std::to_string(n) + " elements of parameter " + std::to_string(s.param));
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(step);
    st->exp_avg(m);
    st->exp_avg_sq(v);
    staged.states.emplace_back(s.leaf, std::move(st));
  }
  return staged;
}

}  // namespace

void load_optimizer_state(torch::optim::AdamW& opt, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                          const std::string& source) {
  stage_optimizer_state(opt, tensors, source).commit(opt);
}

std::string parameter_digest(const torch::nn::Module& model) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> sums;
  for (const auto& p : model.parameters()) {
    auto d = p.detach().to(torch::kFloat64);
    sums.push_back(torch::stack({d.sum(), (d * d).sum()}));
  }
  if (sums.empty()) return "empty";
  auto all = torch::stack(sums).cpu().contiguous();
  return io::fnv1a_hex(all.data_ptr<double>(), static_cast<size_t>(all.numel()) * sizeof(double));
}

namespace {

// What changing one key means for a run continued from a checkpoint.
std::string effect_of(const std::string& key) {
  auto starts = [&](const char* p) { return key.rfind(p, 0) == 0; };
  if (key == "train.steps")
    return "the warmup + cosine schedule is laid out over train.steps: from the resumed step on the learning rate "
           "follows the schedule of the new total, not the one the checkpoint was trained with";
  if (key == "train.batch_size") return "each step sees a different number of images; the lr schedule is per step";
  if (key == "train.seed") return "data order, augmentation and prefix lengths change from the resumed step on";
  if (key == "train.precision") return "the numerics of every later step change";
  if (starts("optim.")) return "the optimizer uses the new value from the resumed step on";
  if (starts("model.")) return "a different architecture: the weights load only if every shape still matches";
  if (starts("data.sources") || starts("data.augment"))
    return "the data changes: the saved loader position belongs to the old sources";
  return "";
}

}  // namespace

std::vector<std::string> describe_config_changes(const std::string& before_yaml, const std::string& after_yaml,
                                                 bool training_only) {
  if (before_yaml.empty()) return {"(the checkpoint predates stored configs: which keys differ is unknown)"};
  std::vector<std::string> lines;
  for (const auto& c : config::config_changes(before_yaml, after_yaml)) {
    if (training_only && !config::affects_training(c.key)) continue;
    std::string line = c.key + " " + c.before + " -> " + c.after;
    const std::string effect = effect_of(c.key);
    if (!effect.empty()) line += " (" + effect + ")";
    lines.push_back(line);
  }
  return lines;
}

namespace {

std::string joined(const std::vector<std::string>& lines, const std::string& sep) {
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? "" : sep) + l;
  return out;
}

}  // namespace

CheckpointManager::CheckpointManager(std::string out_dir, int rank, int world_size, int keep, std::string identity,
                                     std::string config_yaml)
    : dir_((fs::path(out_dir) / "checkpoints").string()), rank_(rank), world_size_(world_size), keep_(std::max(1, keep)),
      identity_(std::move(identity)), config_yaml_(std::move(config_yaml)) {
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

bool CheckpointManager::is_ours(const nlohmann::json& meta) const {
  return meta.is_object() && meta.value("run_identity", std::string()) == identity_;
}

void CheckpointManager::remove_old(const std::string& just_written) const {
  // Only this run's checkpoints count and only they are deleted: a directory whose
  // meta.json is missing or names another run is someone else's data (or a checkpoint a
  // later look may still explain), never ours to remove.
  int kept = 1;  // the one just written, whatever its name sorts as
  for (const auto& path : list()) {
    if (path == just_written) continue;
    nlohmann::json meta;
    try {
      meta = read_json(fs::path(path) / "meta.json");
    } catch (const std::exception&) {
      continue;
    }
    if (!is_ours(meta)) continue;
    if (kept < keep_) {
      ++kept;
      continue;
    }
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) spdlog::warn("could not remove old checkpoint {}: {}", path, ec.message());
  }
}

void CheckpointManager::save(int64_t step, const torch::nn::Module& model, const torch::optim::AdamW& opt,
                             const nlohmann::json& loader_state, const nlohmann::json& meta, dist::Communicator* comm,
                             const std::vector<ShardPiece>& shards) {
  const bool sharded = !shards.empty();
  const fs::path partial = fs::path(dir_) / (step_name(step) + ".partial");
  const fs::path final_dir = fs::path(dir_) / step_name(step);
  if (rank_ == 0) {
    fs::remove_all(partial);
    fs::create_directories(partial);
  }
  if (comm) comm->barrier();
  io::write_file_atomic((partial / ("loader_rank" + std::to_string(rank_) + ".json")).string(), loader_state.dump());
  if (sharded)
    io::save_safetensors((partial / ("optim_rank" + std::to_string(rank_) + ".safetensors")).string(),
                         sharded_optimizer_state(opt, shards));
  if (rank_ == 0) {
    io::NamedTensors tensors;
    for (auto& [n, t] : io::state_dict(model)) tensors.emplace_back("model." + n, t);
    if (!sharded)
      for (auto& [n, t] : optimizer_state(opt)) tensors.emplace_back(n, t);
    io::save_safetensors((partial / "state.safetensors").string(), tensors);
  }
  if (comm) comm->barrier();
  if (rank_ == 0) {
    nlohmann::json m = meta;
    m["step"] = step;
    m["world_size"] = world_size_;
    m["run_identity"] = identity_;
    if (!config_yaml_.empty()) m["config"] = config_yaml_;
    m["optimizer_shards"] = sharded ? world_size_ : 0;
    io::write_file_atomic((partial / "meta.json").string(), m.dump(2));
    fs::remove_all(final_dir);
    fs::rename(partial, final_dir);
    fsync_dir(dir_);
    remove_old(final_dir.string());
  }
  if (comm) comm->barrier();
}

std::optional<ResumePoint> CheckpointManager::restore_latest(
    torch::nn::Module& model, torch::optim::AdamW& opt, bool force,
    const std::function<void(const nlohmann::json&)>& check_loader, dist::Communicator* comm,
    const std::vector<ShardPiece>& shards) {
  std::optional<ResumePoint> chosen;
  StagedOptimizerState staged_opt;
  io::NamedTensors staged_model;
  std::vector<std::string> foreign;
  std::string foreign_changes;  // how the newest foreign checkpoint's config differs from ours
  for (const auto& path : list()) {
    try {
      const fs::path dir(path);
      auto meta = read_json(dir / "meta.json");
      const bool ours = is_ours(meta);
      if (!ours && (foreign.empty() || force) && !config_yaml_.empty()) {
        try {
          foreign_changes = joined(describe_config_changes(meta.value("config", std::string()), config_yaml_, /*training_only=*/true), "; ");
        } catch (const std::exception&) {
          foreign_changes = "(its stored config is unreadable)";
        }
      }
      if (!ours && !force) {
        foreign.push_back(fs::path(path).filename().string());
        continue;
      }
      const int saved_world = meta.at("world_size").get<int>();
      // Every rank reads every loader file, so all ranks agree on which checkpoint is usable.
      std::vector<nlohmann::json> loaders;
      for (int r = 0; r < saved_world; ++r) loaders.push_back(read_json(dir / ("loader_rank" + std::to_string(r) + ".json")));
      const std::string state_path = (dir / "state.safetensors").string();
      auto file = io::load_safetensors(state_path);
      io::NamedTensors model_tensors, optim_tensors;
      for (auto& [n, t] : file.tensors) {
        if (n.rfind("model.", 0) == 0) model_tensors.emplace_back(n.substr(6), t);
        else optim_tensors.emplace_back(n, t);
      }
      // Staging: everything that can reject the checkpoint runs before anything changes.
      io::check_state_dict(model, model_tensors, state_path);
      const int saved_shards = meta.value("optimizer_shards", 0);
      if ((saved_shards > 0) != !shards.empty())
        throw Error(std::string("its optimizer state is ") + (saved_shards > 0 ? "sharded" : "replicated") +
                    " but this run's train.sharding " + (shards.empty() ? "is none" : "shards it"));
      std::vector<int64_t> numels;
      for (const auto& p : model.parameters()) numels.push_back(p.numel());
      auto opt_state = saved_shards > 0 ? stage_sharded_state(shards, numels, dir, saved_shards)
                                        : stage_optimizer_state(opt, optim_tensors, state_path);
      ResumePoint rp;
      rp.step = meta.at("step").get<int64_t>();
      rp.meta = meta;
      rp.path = path;
      rp.foreign = !ours;
      if (!ours) rp.changes = foreign_changes;
      rp.loader = saved_world == world_size_ ? loaders.at(rank_) : loaders.at(0);
      check_loader(rp.loader);
      if (saved_world != world_size_)
        spdlog::warn("checkpoint {} was written with {} ranks, resuming with {}: random-access data resumes exactly, "
                     "streaming shards restart their per-rank split", path, saved_world, world_size_);
      chosen = std::move(rp);
      staged_opt = std::move(opt_state);
      staged_model = std::move(model_tensors);
      break;
    } catch (const std::exception& e) {
      spdlog::warn("checkpoint {} is unusable ({}); falling back to an older one", path, e.what());
    }
  }
  if (!chosen && !foreign.empty()) {
    std::string names;
    for (size_t i = 0; i < foreign.size() && i < 3; ++i) names += (i ? ", " : "") + foreign[i];
    throw Error("train.out_dir: " + fs::path(dir_).parent_path().string() + " holds checkpoints of a different config (" +
                names + (foreign.size() > 3 ? ", ..." : "") + "). " +
                (foreign_changes.empty() ? std::string("Their model, data, optimizer, steps, batch size, seed or precision differ. ")
                                         : "The newest differs in: " + foreign_changes + ". ") +
                "Use a new train.out_dir, or train.resume=force to continue from the newest of them anyway (weights and "
                "optimizer must still fit the model)");
  }
  if (comm) {
    // All ranks must resume from the same step, decided before any rank commits.
    const auto steps = comm->all_gather_host(chosen ? chosen->step : -1);
    if (std::adjacent_find(steps.begin(), steps.end(), std::not_equal_to<>()) != steps.end()) {
      std::string detail;
      for (size_t r = 0; r < steps.size(); ++r)
        detail += (r ? ", " : "") + ("rank " + std::to_string(r) + ": " +
                                     (steps[r] < 0 ? std::string("none") : "step " + std::to_string(steps[r])));
      throw Error("ranks found different checkpoints to resume from (" + detail + ") in " + dir_ +
                  "; a rank could not read the newest one (see its warnings). Fix or remove the unreadable "
                  "checkpoint so that every rank sees the same newest checkpoint");
    }
  }
  if (!chosen) return std::nullopt;
  io::load_state_dict(model, staged_model, chosen->path);
  staged_opt.commit(opt);
  return chosen;
}

}  // namespace aim::train
