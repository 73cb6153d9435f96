#include "aim/model/hub_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/state_dict.h"

namespace fs = std::filesystem;

namespace aim::model {
namespace {

const torch::Tensor* find(const io::NamedTensors& tensors, const std::string& name) {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

}  // namespace

const std::vector<std::string>& hub_weights_names() {
  static const std::vector<std::string> names = {kHubWeightsFile, "model.safetensors.index.json", "pytorch_model.bin",
                                                 "pytorch_model.bin.index.json"};
  return names;
}

bool is_hub_dir(const std::string& path) {
  const fs::path p(path);
  return fs::is_directory(p) && (fs::exists(p / kHubConfigFile) || !hub_weights_file(path).empty());
}

std::string hub_weights_file(const std::string& dir) {
  for (const auto& name : hub_weights_names())
    if (fs::is_regular_file(fs::path(dir) / name)) return (fs::path(dir) / name).string();
  return "";
}

HubConfig read_hub_config(const std::string& dir) {
  const std::string file = (fs::path(dir) / kHubConfigFile).string();
  if (!fs::is_regular_file(file))
    throw Error("'" + dir + "' has no " + kHubConfigFile + " (a hub model directory needs config.json with the "
                "architecture next to model.safetensors)");
  nlohmann::json j;
  try {
    std::ifstream in(file);
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error("'" + file + "': not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error("'" + file + "': expected a JSON object of the model builder's arguments");
  auto get = [&](const char* key, int64_t* out, bool required) {
    if (!j.contains(key)) {
      if (required) throw Error("'" + file + "': key '" + key + "' is missing");
      return;
    }
    const auto& v = j[key];
    // The builder also takes (h, w) pairs for sizes; only square ones describe our models.
    if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[0] == v[1]) {
      *out = v[0].get<int64_t>();
      return;
    }
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      throw Error("'" + file + "': key '" + key + "' must be a positive integer, got " + v.dump());
    *out = v.get<int64_t>();
  };
  HubConfig h;
  get("img_size", &h.img_size, true);
  get("patch_size", &h.patch_size, true);
  get("embed_dim", &h.embed_dim, true);
  get("num_blocks", &h.num_blocks, true);
  get("num_heads", &h.num_heads, true);
  get("num_channels", &h.num_channels, false);
  get("num_classes", &h.num_classes, false);
  const nlohmann::json layers = j.contains("probe_layers") ? j["probe_layers"] : nlohmann::json(6);
  if (layers.is_number_integer()) {  // the builder's int form: the last N blocks
    const int64_t n = layers.get<int64_t>();
    if (n < 1 || n > h.num_blocks)
      throw Error("'" + file + "': key 'probe_layers' = " + std::to_string(n) + " must be in [1, num_blocks=" +
                  std::to_string(h.num_blocks) + "]");
    for (int64_t i = h.num_blocks - n; i < h.num_blocks; ++i) h.probe_layers.push_back(i);
  } else if (layers.is_array() && !layers.empty()) {
    for (const auto& v : layers) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= h.num_blocks)
        throw Error("'" + file + "': key 'probe_layers' holds " + v.dump() + "; block indices are in [0, " +
                    std::to_string(h.num_blocks) + ")");
      h.probe_layers.push_back(v.get<int64_t>());
    }
  } else {
    throw Error("'" + file + "': key 'probe_layers' must be an integer or a list of block indices, got " +
                layers.dump());
  }
  return h;
}

HubConfig hub_config_for(const ModelConfig& m, const std::vector<int64_t>& probe_layers, int64_t classes) {
  HubConfig h;
  h.img_size = m.img_size;
  h.patch_size = m.patch_size;
  h.embed_dim = m.width;
  h.num_blocks = m.depth;
  h.num_heads = m.heads;
  h.num_channels = m.channels;
  h.probe_layers = probe_layers;
  h.num_classes = classes;
  return h;
}

void write_hub_config(const std::string& dir, const HubConfig& h) {
  nlohmann::ordered_json j = {{"img_size", h.img_size},         {"patch_size", h.patch_size},
                              {"embed_dim", h.embed_dim},       {"num_blocks", h.num_blocks},
                              {"num_heads", h.num_heads},       {"num_channels", h.num_channels},
                              {"probe_layers", h.probe_layers}, {"num_classes", h.num_classes}};
  io::write_file_atomic((fs::path(dir) / kHubConfigFile).string(), j.dump(2) + "\n");
}

void check_hub_matches_model(const HubConfig& h, const ModelConfig& m, const std::string& dir) {
  std::vector<std::string> diffs;
  auto cmp = [&](const char* hub_key, int64_t hub_value, const char* model_key, int64_t model_value) {
    if (hub_value != model_value)
      diffs.push_back(std::string(hub_key) + "=" + std::to_string(hub_value) + " vs " + model_key + "=" +
                      std::to_string(model_value));
  };
  cmp("img_size", h.img_size, "model.img_size", m.img_size);
  cmp("patch_size", h.patch_size, "model.patch_size", m.patch_size);
  cmp("embed_dim", h.embed_dim, "model.width", m.width);
  cmp("num_blocks", h.num_blocks, "model.depth", m.depth);
  cmp("num_heads", h.num_heads, "model.heads", m.heads);
  cmp("num_channels", h.num_channels, "model.channels", m.channels);
  if (diffs.empty()) return;
  std::string msg = "'" + (fs::path(dir) / kHubConfigFile).string() + "' describes another model than the configured one: ";
  for (size_t i = 0; i < diffs.size(); ++i) msg += (i ? ", " : "") + diffs[i];
  throw Error(msg + " (set the model section to match, e.g. model.preset)");
}

void check_hub_matches_weights(const HubConfig& h, const io::NamedTensors& tensors, const std::string& dir) {
  const std::string cfg_file = (fs::path(dir) / kHubConfigFile).string();
  const std::string weights = hub_weights_file(dir);
  auto contradiction = [&](const std::string& what, const std::string& tensor, const torch::Tensor* t) {
    throw Error("'" + cfg_file + "' says " + what + " but '" + weights + "' has " + tensor +
                (t ? " of shape " + io::shape_string(*t) : std::string(" missing")));
  };
  const std::string pe = "preprocessor.patchifier.proj.weight";
  const auto* p = find(tensors, pe);
  if (!p || p->dim() != 4 || p->size(0) != h.embed_dim || p->size(1) != h.num_channels ||
      p->size(2) != h.patch_size || p->size(3) != h.patch_size)
    contradiction("embed_dim=" + std::to_string(h.embed_dim) + ", num_channels=" + std::to_string(h.num_channels) +
                      ", patch_size=" + std::to_string(h.patch_size),
                  pe, p);
  const std::string last = "trunk.blocks." + std::to_string(h.num_blocks - 1) + ".attn.qkv.weight";
  const auto* q = find(tensors, last);
  if (!q || q->dim() != 2 || q->size(0) != 3 * h.embed_dim)
    contradiction("num_blocks=" + std::to_string(h.num_blocks) + ", embed_dim=" + std::to_string(h.embed_dim), last, q);
  const std::string extra = "trunk.blocks." + std::to_string(h.num_blocks) + ".attn.qkv.weight";
  if (const auto* x = find(tensors, extra))
    contradiction("num_blocks=" + std::to_string(h.num_blocks), extra, x);
  const std::string lin = "head.linear.weight";
  const auto* l = find(tensors, lin);
  if (l && (l->dim() != 2 || l->size(0) != h.num_classes || l->size(1) != h.embed_dim))
    contradiction("num_classes=" + std::to_string(h.num_classes) + ", embed_dim=" + std::to_string(h.embed_dim), lin, l);
}

}  // namespace aim::model
