#include "aim/io/weights_file.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "aim/error.h"
#include "aim/io/torch_archive.h"

namespace fs = std::filesystem;

namespace aim::io {
namespace {

bool is_shard_index(const std::string& path) {
  const std::string suffix = ".index.json";
  return path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The shard files of a Hugging Face index, in the order they first appear in its weight_map.
std::vector<std::string> index_shards(const std::string& path) {
  nlohmann::json j;
  try {
    std::ifstream in(path);
    if (!in) throw Error("cannot open");
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error("shard index '" + path + "': not readable JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object() || j["weight_map"].empty())
    throw Error("shard index '" + path + "': expected an object with a non-empty 'weight_map' (tensor -> file)");
  std::vector<std::string> files;
  std::set<std::string> seen;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      throw Error("shard index '" + path + "': weight_map['" + it.key() + "'] must be a file name");
    const std::string file = it.value().get<std::string>();
    if (file.find('/') != std::string::npos || file == ".." || file.empty())
      throw Error("shard index '" + path + "': weight_map['" + it.key() + "'] = '" + file +
                  "' must name a file beside the index");
    if (seen.insert(file).second) files.push_back((fs::path(path).parent_path() / file).string());
  }
  return files;
}

}  // namespace

std::string weights_format(const std::string& path) {
  if (is_shard_index(path)) return "shard index";
  return looks_like_torch_save(path) ? "torch.save" : "safetensors";
}

SafetensorsFile load_weights_file(const std::string& path) {
  if (fs::is_directory(path))
    throw Error("'" + path + "' is a directory; expected a weights file (.safetensors, .pth/.pt/.bin, *.index.json)");
  if (is_shard_index(path)) {
    SafetensorsFile out;
    std::set<std::string> names;
    for (const auto& shard : index_shards(path))
      for (auto& [name, t] : load_weights_file(shard).tensors) {
        if (!names.insert(name).second)
          throw Error("shard index '" + path + "': tensor '" + name + "' is in more than one shard");
        out.tensors.emplace_back(name, std::move(t));
      }
    return out;
  }
  if (looks_like_torch_save(path)) {
    SafetensorsFile out;
    out.tensors = load_torch_state_dict(path).tensors;
    return out;
  }
  return load_safetensors(path);
}

std::string convert_to_safetensors(const std::string& in, const std::string& out) {
  std::error_code ec;
  if (fs::exists(out) && fs::equivalent(in, out, ec))
    throw Error("--convert: the output '" + out + "' is the input file; name another file");
  SafetensorsFile file = load_weights_file(in);
  std::map<std::string, int64_t> dtypes;
  double bytes = 0;
  for (auto& [name, t] : file.tensors) {
    t = t.contiguous();  // a view of a shared storage becomes its own bytes
    ++dtypes[std::string(c10::toString(t.scalar_type()))];
    bytes += static_cast<double>(t.numel() * t.element_size());
  }
  auto meta = file.metadata;
  meta["format"] = "pt";
  meta["converted_from"] = fs::path(in).filename().string();
  save_safetensors(out, file.tensors, meta);
  std::string kinds;
  for (const auto& [dt, n] : dtypes) kinds += (kinds.empty() ? "" : ", ") + dt + " " + std::to_string(n);
  char size[32];
  std::snprintf(size, sizeof size, "%.3g MB", bytes / 1e6);
  return std::to_string(file.tensors.size()) + " tensors (" + kinds + "), " + size + " from " + weights_format(in) +
         " -> " + out;
}

std::map<std::string, std::string> read_weights_metadata(const std::string& path) {
  if (is_shard_index(path) || looks_like_torch_save(path)) return {};
  return read_safetensors_metadata(path);
}

}  // namespace aim::io
