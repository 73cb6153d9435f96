// CheckpointManager::restore_latest: each rank reads the parts that overlap its slice of the
// parameters, every rank votes on each candidate, and the accepted one is committed: slices
// into the model and optimizer, then all-gathers for what other ranks read.
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <cstring>
#include <set>

#include "aim/compat.h"
#include "aim/data/loader_state.h"
#include "aim/error.h"
#include "aim/io/checksum.h"
#include "aim/io/mapped_file.h"
#include "aim/train/checkpoint.h"
#include "checkpoint_parts.h"

namespace fs = std::filesystem;

namespace aim::train {
namespace {

using ckpt::Field;

int64_t step_of(const std::string& path) {
  const auto name = fs::path(path).filename().string();
  return std::stoll(name.substr(5, name.find('.') == std::string::npos ? std::string::npos : name.find('.') - 5));
}

// A candidate rejected on this rank: why, and which of the manifest's files (-1: none).
struct Rejected {
  std::string why;
  int file = -1;
};

// This rank's slice of one checkpoint, read and checked, not yet in the model.
struct Staged {
  ckpt::Manifest manifest;
  nlohmann::json meta, loader;
  bool ours = true;
  torch::Tensor weights, exp_avg, exp_avg_sq;  // elements [lo, hi) of the flattened space
  std::map<int64_t, int64_t> steps;            // parameter -> AdamW step, for parameters with state in [lo, hi)
  std::map<int64_t, int64_t> avg_elements, avg_sq_elements;  // parameter -> moment elements read in [lo, hi)
  uint64_t bytes_read = 0;
};

int file_index(const ckpt::Manifest& m, const std::string& name) {
  for (size_t i = 0; i < m.files.size(); ++i)
    if (m.files[i].name == name) return static_cast<int>(i);
  return -1;
}

// Reads saved part `r` (mapped), checks it against the manifest and copies what lies in
// [lo, hi) into `s`. The mapping is gone when it returns: one part at a time in memory.
void read_part(const std::string& dir, int r, const ckpt::ParamSpace& space, int64_t lo, int64_t hi, Staged& s) {
  const auto& man = s.manifest;
  const auto& rec = *man.file(ckpt::part_file(r));
  const std::string path = (fs::path(dir) / rec.name).string();
  auto reject = [&](const std::string& why) { return Rejected{rec.name + ": " + why, file_index(man, rec.name)}; };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw reject("missing");
  if (static_cast<uint64_t>(st.st_size) != rec.bytes)
    throw reject("has " + std::to_string(st.st_size) + " bytes, the manifest says " + std::to_string(rec.bytes) +
                 " (truncated?)");
  io::MappedFile file(path);
  if (io::block_digest(file.data(), file.size(), man.block_bytes, 2) != rec.digest)
    throw reject("fails its checksum (damaged after it was written)");
  io::SafetensorsIndex index;
  try {
    index = io::index_safetensors(file.data(), file.size(), path);
  } catch (const Error& e) {
    throw reject(e.what());
  }
  const auto [rlo, rhi] = shard_range(space.total(), r, man.world_size);
  std::map<std::pair<int64_t, int64_t>, int64_t> moment_pieces;  // (param, begin) -> elements
  std::vector<std::pair<const io::TensorEntry*, std::pair<int64_t, int64_t>>> step_entries;
  for (const auto& e : index.tensors) {
    Field field;
    std::string name;
    int64_t begin = 0;
    if (!ckpt::parse_piece_name(e.name, &field, &name, &begin)) throw reject("holds '" + e.name + "', not a checkpoint piece");
    const int64_t k = space.find(name);
    if (k < 0) throw reject("holds '" + e.name + "' of no parameter of the model");
    const int64_t n = e.shape.size() == 1 ? e.shape[0] : -1;
    const auto want = field == Field::kStep ? torch::kInt64 : space.dtypes[k];
    if (e.dtype != want || n < 0 || (field == Field::kStep && n != 1))
      throw reject("'" + e.name + "' has the wrong dtype or shape");
    if (field == Field::kStep) {
      step_entries.push_back({&e, {k, begin}});
      continue;
    }
    const int64_t a = space.offset[k] + begin, b = a + n;
    if (begin < 0 || b > space.offset[k + 1] || a < rlo || b > rhi)
      throw reject("'" + e.name + "' lies outside rank " + std::to_string(r) + "'s slice");
    if (field != Field::kWeight) moment_pieces[{k, begin}] = n;
    const int64_t x = std::max(a, lo), y = std::min(b, hi);
    if (x >= y) continue;
    auto src = torch::from_blob(const_cast<uint8_t*>(file.data() + e.offset), {n}, torch::TensorOptions().dtype(e.dtype))
                   .slice(0, x - a, y - a);
    torch::Tensor* dst = field == Field::kWeight ? &s.weights : field == Field::kExpAvg ? &s.exp_avg : &s.exp_avg_sq;
    if (!dst->defined()) *dst = torch::zeros({hi - lo}, torch::TensorOptions().dtype(e.dtype));
    dst->slice(0, x - lo, y - lo).copy_(src);
    if (field == Field::kExpAvg) s.avg_elements[k] += y - x;
    if (field == Field::kExpAvgSq) s.avg_sq_elements[k] += y - x;
  }
  for (const auto& [e, key] : step_entries) {
    auto it = moment_pieces.find(key);
    if (it == moment_pieces.end()) throw reject("'" + e->name + "' belongs to no moments in the part");
    const int64_t a = space.offset[key.first] + key.second, b = a + it->second;
    if (std::max(a, lo) < std::min(b, hi)) {
      int64_t step = 0;
      std::memcpy(&step, file.data() + e->offset, sizeof step);
      s.steps[key.first] = step;
    }
  }
  s.bytes_read += file.size();
}

// Reads and checks everything this rank needs of checkpoint `dir`; throws Rejected.
Staged stage(const std::string& dir, const ckpt::ParamSpace& space, int64_t lo, int64_t hi,
             const std::function<void(const nlohmann::json&)>& check_loader) {
  Staged s;
  try {
    s.manifest = ckpt::Manifest::read(dir);
  } catch (const Error& e) {
    throw Rejected{e.what(), -1};
  }
  const auto& man = s.manifest;
  const auto& meta_rec = *man.file(ckpt::kMeta);
  try {
    s.meta = nlohmann::json::parse(ckpt::read_verified(dir, meta_rec, man.block_bytes));
  } catch (const std::exception& e) {
    throw Rejected{e.what(), file_index(man, ckpt::kMeta)};
  }
  const std::string diff = man.params.difference(space);
  if (!diff.empty()) throw Rejected{"its parameters do not fit the model (model changed?): " + diff, -1};
  // The parts whose slices overlap this rank's: one at a time.
  for (int r = 0; r < man.world_size; ++r) {
    const auto [rlo, rhi] = shard_range(space.total(), r, man.world_size);
    if (std::max(rlo, lo) < std::min(rhi, hi)) read_part(dir, r, space, lo, hi, s);
  }
  const int64_t covered = s.weights.defined() ? hi - lo : 0;
  if (hi > lo && covered != hi - lo) throw Rejected{"its parts do not cover this rank's slice of the weights", -1};
  for (size_t k = 0; k < space.size(); ++k) {
    const int64_t overlap = std::max<int64_t>(0, std::min(hi, space.offset[k + 1]) - std::max(lo, space.offset[k]));
    const auto kk = static_cast<int64_t>(k);
    const int64_t got = s.avg_elements.count(kk) ? s.avg_elements[kk] : 0;
    const int64_t got_sq = s.avg_sq_elements.count(kk) ? s.avg_sq_elements[kk] : 0;
    if (got != got_sq || (got != 0 && (got != overlap || !s.steps.count(kk))))
      throw Rejected{"its optimizer state covers " + std::to_string(got) + " of the " + std::to_string(overlap) +
                         " elements of " + space.names[k] + " in this rank's slice",
                     -1};
  }
  // Every rank's loader position, merged: the loader picks its own part of it.
  std::vector<data::LoaderState> loaders;
  for (int r = 0; r < man.world_size; ++r) {
    const auto& rec = *man.file(ckpt::loader_file(r));
    try {
      loaders.push_back(nlohmann::json::parse(ckpt::read_verified(dir, rec, man.block_bytes)).get<data::LoaderState>());
    } catch (const std::exception& e) {
      throw Rejected{rec.name + ": " + e.what(), file_index(man, rec.name)};
    }
  }
  try {
    s.loader = data::merge_loader_states(loaders);
    check_loader(s.loader);
  } catch (const std::exception& e) {
    throw Rejected{std::string("its loader position does not fit this run: ") + e.what(), -1};
  }
  return s;
}

// Elements [bounds[r], bounds[r+1]) of the flattened space are rank r's; this rank's are in
// `targets` already. Every rank gets every rank's, in chunks of at most `chunk` elements.
void all_gather_space(std::vector<torch::Tensor>& targets, const std::vector<int64_t>& offset,
                      const std::vector<int64_t>& bounds, dist::Communicator& comm, int64_t chunk,
                      torch::TensorOptions opts) {
  const int world = comm.world_size(), me = comm.rank();
  int64_t widest = 0;
  for (int r = 0; r < world; ++r) widest = std::max(widest, bounds[r + 1] - bounds[r]);
  const int64_t per_chunk = std::max<int64_t>(1, std::min(widest, chunk));
  auto in = torch::zeros({per_chunk}, opts);
  auto out = torch::empty({per_chunk * world}, opts);
  const int64_t mine = bounds[me + 1] - bounds[me];
  for (int64_t c = 0; c < widest; c += per_chunk) {
    const int64_t len = std::min(mine - c, per_chunk);
    if (len > 0) ckpt::copy_from_space(targets, offset, bounds[me] + c, in.slice(0, 0, len));
    comm.all_gather(out, in);
    for (int r = 0; r < world; ++r) {
      const int64_t n = std::min(bounds[r + 1] - bounds[r] - c, per_chunk);
      if (r != me && n > 0) ckpt::copy_into_space(targets, offset, bounds[r] + c, out.slice(0, r * per_chunk, r * per_chunk + n));
    }
  }
}

}  // namespace

std::optional<ResumePoint> CheckpointManager::restore_latest(
    torch::nn::Module& model, torch::optim::AdamW& opt, bool force,
    const std::function<void(const nlohmann::json&)>& check_loader, dist::Communicator* comm,
    const std::vector<ShardPiece>& shards) {
  if (world_size_ > 1 && !comm) throw Error("internal: restoring on several ranks needs their communicator");
  const auto t0 = std::chrono::steady_clock::now();
  const auto space = ckpt::ParamSpace::of(model);
  for (size_t k = 1; k < space.size(); ++k)
    if (space.dtypes[k] != space.dtypes[0]) throw Error("checkpoints need parameters of one dtype");
  const auto [lo, hi] = shard_range(space.total(), rank_, world_size_);

  // Every rank walks rank 0's list of candidates, newest first, and votes on each.
  std::map<int64_t, std::string> local;
  for (const auto& p : list()) local[step_of(p)] = p;
  std::vector<int64_t> steps;
  for (auto it = local.rbegin(); it != local.rend(); ++it) steps.push_back(it->first);
  if (comm) {
    const auto n = comm->broadcast_host({static_cast<int64_t>(steps.size())}, 0).at(0);
    steps.resize(static_cast<size_t>(n), -1);
    if (n > 0) steps = comm->broadcast_host(steps, 0);
  }
  std::vector<std::string> foreign;
  std::string foreign_changes;  // how the newest foreign checkpoint's config differs from ours
  std::optional<Staged> chosen;
  std::string chosen_path;
  for (const int64_t step : steps) {
    const std::string path = local.count(step) ? local[step] : (fs::path(dir_) / ckpt::step_name(step)).string();
    enum Vote : int64_t { kOk = 0, kForeign = 1, kBad = 2 };  // kBad + 1 + i: the manifest's file i
    int64_t vote = kOk;
    std::optional<Staged> s;
    std::string why;
    try {
      if (!local.count(step)) throw Rejected{"not found on this rank (is train.out_dir shared by every rank?)", -1};
      s = stage(path, space, lo, hi, check_loader);
      s->ours = is_ours(s->meta);
      if (!s->ours && (foreign.empty() || force) && !config_yaml_.empty()) {
        try {
          std::string c;
          for (const auto& l : describe_config_changes(s->meta.value("config", std::string()), config_yaml_,
                                                        /*training_only=*/true))
            c += (c.empty() ? "" : "; ") + l;
          foreign_changes = c;
        } catch (const std::exception&) {
          foreign_changes = "(its stored config is unreadable)";
        }
      }
      if (!s->ours && !force) vote = kForeign;
    } catch (const Rejected& r) {
      why = r.why;
      vote = kBad + 1 + r.file;
    } catch (const std::exception& e) {
      why = e.what();
      vote = kBad;
    }
    const auto votes = comm ? comm->all_gather_host(vote) : std::vector<int64_t>{vote};
    if (std::all_of(votes.begin(), votes.end(), [](int64_t v) { return v == kOk; })) {
      chosen = std::move(s);
      chosen_path = path;
      break;
    }
    if (std::all_of(votes.begin(), votes.end(), [](int64_t v) { return v == kForeign; })) {
      foreign.push_back(fs::path(path).filename().string());
      continue;
    }
    if (!why.empty()) {
      spdlog::warn("checkpoint {} is unusable ({}); falling back to an older one", path, why);
      continue;
    }
    std::string who;
    for (size_t r = 0; r < votes.size(); ++r) {
      if (votes[r] < kBad) continue;
      const int64_t f = votes[r] - kBad - 1;
      const bool named = s && f >= 0 && f < static_cast<int64_t>(s->manifest.files.size());
      who += (who.empty() ? "" : ", ") + ("rank " + std::to_string(r)) +
             (named ? " (" + s->manifest.files[static_cast<size_t>(f)].name + ")" : std::string());
    }
    if (who.empty())
      spdlog::warn("checkpoint {}: the ranks disagree whether it is this run's; falling back to an older one", path);
    else
      spdlog::warn("checkpoint {} is unusable on {} (see the warnings there); falling back to an older one, as every "
                   "rank does",
                   path, who);
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
  if (!chosen) return std::nullopt;

  // Commit: every rank accepted this checkpoint.
  torch::NoGradGuard ng;
  Staged& s = *chosen;
  auto params = model.parameters();
  const auto opts = params.empty() ? torch::TensorOptions() : params.front().options().requires_grad(false);
  const int64_t chunk = static_cast<int64_t>(options_.chunk_bytes / 4);
  std::vector<int64_t> bounds;
  for (int r = 0; r < world_size_; ++r) bounds.push_back(shard_range(space.total(), r, world_size_).first);
  bounds.push_back(space.total());
  std::vector<torch::Tensor> flat;
  for (auto& p : params) flat.push_back(p.view({-1}));
  if (hi > lo) ckpt::copy_into_space(flat, space.offset, lo, s.weights.to(opts.device()));
  if (comm && world_size_ > 1) all_gather_space(flat, space.offset, bounds, *comm, chunk, opts);

  opt.state().clear();
  auto make_state = [](int64_t step, torch::Tensor m, torch::Tensor v) {
    auto st = std::make_unique<torch::optim::AdamWParamState>();
    st->step(step);
    st->exp_avg(std::move(m));
    st->exp_avg_sq(std::move(v));
    return st;
  };
  if (!shards.empty()) {
    for (const auto& piece : shards) {
      const int64_t a = space.offset[piece.param] + piece.begin - lo, b = a + piece.end - piece.begin;
      auto it = s.steps.find(piece.param);
      if (it == s.steps.end()) continue;  // never updated
      opt.state()[compat::optimizer_state_key(piece.leaf)] =
          make_state(it->second, s.exp_avg.slice(0, a, b).to(piece.leaf.options()).clone(),
                     s.exp_avg_sq.slice(0, a, b).to(piece.leaf.options()).clone());
    }
  } else {
    // Replicated AdamW: every rank needs every parameter's state. The step counts come from the
    // rank whose slice holds each parameter's first element; the moments are gathered like the weights.
    std::vector<double> step_plus_one(space.size(), 0.0);
    for (const auto& [k, step] : s.steps)
      if (space.offset[k] >= lo && space.offset[k] < hi) step_plus_one[k] = static_cast<double>(step + 1);
    if (comm && world_size_ > 1) step_plus_one = comm->all_reduce_sum_host(step_plus_one);
    std::set<const void*> optimized;
    for (const auto& g : opt.param_groups())
      for (const auto& p : g.params()) optimized.insert(p.unsafeGetTensorImpl());
    std::vector<torch::Tensor> m(space.size()), v(space.size());
    for (size_t k = 0; k < space.size(); ++k)
      if (step_plus_one[k] > 0 && optimized.count(params[k].unsafeGetTensorImpl())) {
        m[k] = torch::zeros({space.numel(k)}, opts);
        v[k] = torch::zeros({space.numel(k)}, opts);
      }
    if (hi > lo && s.exp_avg.defined()) {
      ckpt::copy_into_space(m, space.offset, lo, s.exp_avg.to(opts.device()));
      ckpt::copy_into_space(v, space.offset, lo, s.exp_avg_sq.to(opts.device()));
    }
    if (comm && world_size_ > 1) {
      all_gather_space(m, space.offset, bounds, *comm, chunk, opts);
      all_gather_space(v, space.offset, bounds, *comm, chunk, opts);
    }
    for (size_t k = 0; k < space.size(); ++k)
      if (m[k].defined())
        opt.state()[compat::optimizer_state_key(params[k])] =
            make_state(static_cast<int64_t>(step_plus_one[k]) - 1, m[k].view(params[k].sizes()), v[k].view(params[k].sizes()));
  }

  ResumePoint rp;
  rp.step = s.manifest.step;
  rp.loader = s.loader;
  rp.meta = s.meta;
  rp.path = chosen_path;
  rp.foreign = !s.ours;
  if (!s.ours) rp.changes = foreign_changes;
  rp.bytes_read = s.bytes_read;
  rp.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rp;
}

}  // namespace aim::train
