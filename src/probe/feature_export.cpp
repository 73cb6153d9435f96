#include "aim/probe/feature_export.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "aim/data/image_folder_source.h"
#include "aim/data/loader.h"
#include "aim/data/webdataset_source.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/safetensors.h"
#include "aim/probe/class_labels.h"
#include "aim/probe/feature_extractor.h"
#include "aim/probe/knn.h"
#include "aim/runtime/device.h"

namespace fs = std::filesystem;

namespace aim::probe {
namespace {

constexpr double kShardBytes = 512e6;

/// Names a split's samples by their position in its ordered eval pass.
class SampleNamer {
 public:
  explicit SampleNamer(const data::SourceConfig& s) : source_(s) {
    if (s.kind == "image_folder") folder_ = std::make_unique<data::ImageFolderSource>(s.root);
    if (s.kind == "webdataset") wds_ = std::make_unique<data::WebDatasetSource>(s.name, s.shards, s.limit);
  }
  std::string operator()(int64_t index) const {
    if (folder_) return fs::relative(folder_->path(index), source_.root).string();
    if (wds_) {  // stream_sample_key: 2^62 + shard position * 2^32 + offset
      const int64_t key = index - (int64_t{1} << 62), position = key >> 32, offset = key & 0xffffffff;
      const auto& shards = wds_->shards();
      return (position >= 0 && position < static_cast<int64_t>(shards.size()) ? shards[position].path : "?") + "#" +
             std::to_string(offset);
    }
    if (source_.kind == "idx") return source_.path + ":" + source_.split + "#" + std::to_string(index);
    return source_.kind + "#" + std::to_string(index);
  }

 private:
  data::SourceConfig source_;
  std::unique_ptr<data::ImageFolderSource> folder_;
  std::unique_ptr<data::WebDatasetSource> wds_;
};

struct ShardWriter {
  ShardWriter(std::string d, std::string s, int r, int64_t n)
      : dir(std::move(d)), split(std::move(s)), rank(r), per_shard(n) {}
  std::string dir, split;
  int rank;
  int64_t per_shard;
  std::vector<torch::Tensor> pooled, tokens, labels, index;
  std::vector<std::string> names;
  int64_t buffered = 0, written = 0, shards = 0;

  void add(const torch::Tensor& feats, const torch::Tensor& y, const torch::Tensor& idx, std::vector<std::string> n,
           bool with_tokens) {
    for (int64_t start = 0; start < feats.size(0);) {
      const int64_t take = std::min(feats.size(0) - start, per_shard - buffered);
      auto f = feats.narrow(0, start, take);
      pooled.push_back(knn_pooled(f).cpu());
      if (with_tokens) tokens.push_back(f.to(torch::kCPU, torch::kHalf));
      labels.push_back(y.narrow(0, start, take).cpu());
      index.push_back(idx.narrow(0, start, take).cpu());
      names.insert(names.end(), n.begin() + start, n.begin() + start + take);
      buffered += take;
      start += take;
      if (buffered == per_shard) flush();
    }
  }
  void flush() {
    if (buffered == 0) return;
    io::NamedTensors t = {{"pooled", torch::cat(pooled)}};
    if (!tokens.empty()) t.emplace_back("tokens", torch::cat(tokens));
    t.emplace_back("labels", torch::cat(labels));
    t.emplace_back("index", torch::cat(index));
    io::save_safetensors(shard_path(dir, split, rank, shards), t,
                         {{"split", split}, {"names", nlohmann::json(names).dump()}});
    written += buffered;
    ++shards;
    buffered = 0;
    pooled.clear(), tokens.clear(), labels.clear(), index.clear(), names.clear();
  }
  static std::string shard_file(const std::string& split, int rank, int64_t k) {
    return split + "/" + fmt::format("r{}-{:05d}.safetensors", rank, k);
  }
  static std::string shard_path(const std::string& dir, const std::string& split, int rank, int64_t k) {
    return (fs::path(dir) / shard_file(split, rank, k)).string();
  }
};

}  // namespace

std::vector<ExtractedSplit> extract_features(const config::RunConfig& cfg, const dist::DistEnv& env,
                                             dist::Communicator* comm, const ExtractOptions& opt) {
  if (opt.dir.empty()) throw Error("--extract: needs a directory");
  if (opt.shard_size < 0) throw Error("--shard-size: must be >= 0 (0 = about 512 MB per shard)");
  const torch::Device device = runtime::select_device(cfg.train.device, env.local_rank);
  const int world = comm ? comm->world_size() : 1, rank = comm ? comm->rank() : 0;
  // A previous extraction's index would mark this one complete before it is.
  if (rank == 0) fs::remove(fs::path(opt.dir) / "index.json");
  FeatureExtractor fx(cfg, device);
  const double bytes = 4.0 * fx.dim() + (opt.tokens ? 2.0 * fx.tokens() * fx.dim() : 0.0);
  const int64_t per_shard =
      opt.shard_size > 0 ? opt.shard_size : std::max<int64_t>(1, static_cast<int64_t>(kShardBytes / bytes));
  nlohmann::ordered_json index = {
      {"format", "aim-probe features 1"},
      {"weights", fx.source()},
      {"features", cfg.probe.features},
      {"blocks", fx.blocks()},
      {"dim", fx.dim()},
      {"tokens", opt.tokens ? nlohmann::ordered_json(fx.tokens()) : nlohmann::ordered_json(nullptr)},
      {"pooled", "float32 [n, dim]: the probe's features averaged over tokens"},
      {"transform", "eval: resize + centre crop, ImageNet normalization"},
      {"splits", nlohmann::ordered_json::object()}};
  std::vector<ExtractedSplit> out;
  for (const char* split : {"train", "val"}) {
    const auto& source = std::string(split) == "train" ? cfg.probe.train_data : cfg.probe.val_data;
    if (!source) continue;
    fs::create_directories(fs::path(opt.dir) / split);
    data::Loader loader(
        config::probe_loader_config(cfg, std::string(split) == "train", /*augment=*/false, rank, world));
    const SampleNamer namer(*source);
    ShardWriter w{opt.dir, split, rank, per_shard};
    torch::NoGradGuard no_grad;
    while (auto batch = loader.next()) {
      std::vector<std::string> names;
      for (int64_t i = 0; i < batch->size(); ++i) names.push_back(namer(batch->index[i].item<int64_t>()));
      w.add(fx(batch->images), batch->labels, batch->index, std::move(names), opt.tokens);
    }
    w.flush();
    // Shard counts and sizes follow from each rank's sample count (full shards, then the rest).
    const std::vector<int64_t> counts = comm ? comm->all_gather_host(w.written) : std::vector<int64_t>{w.written};
    nlohmann::ordered_json shards = nlohmann::ordered_json::array();
    ExtractedSplit s{split, 0, 0};
    for (int r = 0; r < world; ++r)
      for (int64_t k = 0, left = counts[r]; left > 0; ++k, left -= per_shard) {
        shards.push_back({{"file", ShardWriter::shard_file(split, r, k)}, {"samples", std::min(left, per_shard)}});
        ++s.shards;
      }
    for (int64_t c : counts) s.samples += c;
    index["splits"][split] = {{"source", source->kind},
                              {"samples", s.samples},
                              {"class_names", split_class_names(source)},
                              {"shards", shards}};
    out.push_back(s);
    if (rank == 0) spdlog::info("extract: {} {} samples in {} shards", s.samples, split, s.shards);
  }
  // The index goes last, after every rank's shards are on disk: its presence marks a
  // complete extraction.
  if (comm) comm->barrier();
  if (rank == 0) io::write_file_atomic((fs::path(opt.dir) / "index.json").string(), index.dump(2) + "\n");
  return out;
}

}  // namespace aim::probe
