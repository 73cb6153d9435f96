// The sharded checkpoint format's shared pieces (include/aim/io/sharded_checkpoint.h): names,
// the parameter space, the manifest, checksummed small files, and the weights read back.
#include "aim/io/sharded_checkpoint.h"

#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/checksum.h"
#include "aim/io/mapped_file.h"

namespace fs = std::filesystem;

namespace aim::io::ckpt {

std::string part_file(int rank) { return "part_rank" + std::to_string(rank) + ".safetensors"; }
std::string loader_file(int rank) { return "loader_rank" + std::to_string(rank) + ".json"; }

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "step_%09lld", static_cast<long long>(step));
  return buf;
}

namespace {

const std::vector<std::pair<std::string, torch::Dtype>>& dtype_names() {
  static const std::vector<std::pair<std::string, torch::Dtype>> table = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16}};
  return table;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

void ParamSpace::build_index() {
  index_.clear();
  for (size_t k = 0; k < names.size(); ++k) index_[names[k]] = static_cast<int64_t>(k);
  offset.assign(1, 0);
  for (const auto& s : shapes) {
    int64_t n = 1;
    for (auto d : s) n *= d;
    offset.push_back(offset.back() + n);
  }
}

ParamSpace ParamSpace::of(const torch::nn::Module& model) {
  ParamSpace s;
  for (const auto& p : model.named_parameters()) {
    s.names.push_back(p.key());
    s.shapes.push_back(p.value().sizes().vec());
    s.dtypes.push_back(p.value().scalar_type());
  }
  s.build_index();
  return s;
}

nlohmann::json ParamSpace::to_json() const {
  auto out = nlohmann::json::array();
  for (size_t k = 0; k < names.size(); ++k) {
    std::string dt;
    for (const auto& [n, d] : dtype_names())
      if (d == dtypes[k]) dt = n;
    out.push_back({{"name", names[k]}, {"shape", shapes[k]}, {"dtype", dt}});
  }
  return out;
}

ParamSpace ParamSpace::from_json(const nlohmann::json& j) {
  ParamSpace s;
  if (!j.is_array()) throw Error("'params' must be a list");
  for (const auto& e : j) {
    const auto dt = e.at("dtype").get<std::string>();
    auto it = std::find_if(dtype_names().begin(), dtype_names().end(), [&](const auto& p) { return p.first == dt; });
    if (it == dtype_names().end()) throw Error("parameter dtype '" + dt + "' is not a floating-point safetensors dtype");
    s.names.push_back(e.at("name").get<std::string>());
    s.shapes.push_back(e.at("shape").get<std::vector<int64_t>>());
    for (auto d : s.shapes.back())
      if (d < 0) throw Error("parameter '" + s.names.back() + "' has a negative dimension");
    s.dtypes.push_back(it->second);
  }
  s.build_index();
  return s;
}

int64_t ParamSpace::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

std::string ParamSpace::difference(const ParamSpace& model) const {
  std::vector<std::string> out;
  for (size_t k = 0; k < model.size(); ++k) {
    const int64_t j = find(model.names[k]);
    if (j < 0) out.push_back("missing " + model.names[k]);
    else if (shapes[j] != model.shapes[k])
      out.push_back(model.names[k] + ": " + shape_text(shapes[j]) + " in the checkpoint, " +
                    shape_text(model.shapes[k]) + " in the model");
    else if (dtypes[j] != model.dtypes[k])
      out.push_back(model.names[k] + ": " + std::string(c10::toString(dtypes[j])) + " in the checkpoint, " +
                    c10::toString(model.dtypes[k]) + " in the model");
    else if (j != static_cast<int64_t>(k))
      out.push_back(model.names[k] + " is parameter " + std::to_string(j) + " in the checkpoint, " + std::to_string(k) +
                    " in the model");
  }
  for (const auto& n : names)
    if (model.find(n) < 0) out.push_back("unexpected " + n);
  std::string s;
  for (size_t i = 0; i < out.size() && i < 5; ++i) s += (i ? "; " : "") + out[i];
  if (out.size() > 5) s += "; and " + std::to_string(out.size() - 5) + " more";
  return s;
}

std::string piece_name(const std::string& param, Field field, int64_t begin) {
  static const char* prefix[] = {"model.", "optim.exp_avg.", "optim.exp_avg_sq.", "optim.step."};
  return prefix[static_cast<int>(field)] + param + "@" + std::to_string(begin);
}

bool parse_piece_name(const std::string& name, Field* field, std::string* param, int64_t* begin) {
  // Longest prefix first: "optim.exp_avg_sq." also starts with "optim.exp_avg".
  static const std::pair<const char*, Field> prefixes[] = {{"optim.exp_avg_sq.", Field::kExpAvgSq},
                                                           {"optim.exp_avg.", Field::kExpAvg},
                                                           {"optim.step.", Field::kStep},
                                                           {"model.", Field::kWeight}};
  const auto at = name.rfind('@');
  if (at == std::string::npos || at + 1 >= name.size()) return false;
  const std::string digits = name.substr(at + 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) return false;
  for (const auto& [p, f] : prefixes) {
    const size_t n = std::char_traits<char>::length(p);
    if (name.compare(0, n, p) == 0 && at > n) {
      *field = f;
      *param = name.substr(n, at - n);
      *begin = std::stoll(digits);
      return true;
    }
  }
  return false;
}

nlohmann::json Manifest::to_json() const {
  auto files_j = nlohmann::json::array();
  for (const auto& f : files)
    files_j.push_back({{"name", f.name}, {"bytes", f.bytes}, {"xxh64", io::digest_hex(f.digest)}});
  return {{"format", "aim-checkpoint"}, {"version", kFormatVersion}, {"step", step},
          {"world_size", world_size},   {"block_bytes", block_bytes},  {"files", files_j},
          {"params", params.to_json()}};
}

Manifest Manifest::read(const std::string& dir) {
  const std::string path = (fs::path(dir) / kManifest).string();
  std::ifstream in(path);
  if (!in) throw Error("cannot read '" + path + "'");
  try {
    const auto j = nlohmann::json::parse(in);
    if (j.value("format", std::string()) != "aim-checkpoint")
      throw Error("it is not an aim checkpoint manifest (no \"format\": \"aim-checkpoint\")");
    if (j.at("version").get<int>() != kFormatVersion)
      throw Error("checkpoint format " + std::to_string(j.at("version").get<int>()) + "; this aim reads format " +
                  std::to_string(kFormatVersion));
    Manifest m;
    m.step = j.at("step").get<int64_t>();
    m.world_size = j.at("world_size").get<int>();
    m.block_bytes = j.at("block_bytes").get<uint64_t>();
    if (m.world_size < 1 || m.block_bytes == 0) throw Error("world_size and block_bytes must be positive");
    m.params = ParamSpace::from_json(j.at("params"));
    for (const auto& f : j.at("files")) {
      const auto name = f.at("name").get<std::string>();
      if (name.find('/') != std::string::npos || name == "." || name == "..")
        throw Error("file name '" + name + "' is not a plain name");
      m.files.push_back({name, f.at("bytes").get<uint64_t>(), io::parse_digest_hex(f.at("xxh64").get<std::string>())});
    }
    for (int r = 0; r < m.world_size; ++r)
      for (const auto& name : {part_file(r), loader_file(r)})
        if (!m.file(name)) throw Error("it does not list " + name + " of its " + std::to_string(m.world_size) + " ranks");
    if (!m.file(kMeta)) throw Error("it does not list meta.json");
    return m;
  } catch (const Error& e) {
    throw Error("'" + path + "': " + e.what());
  } catch (const std::exception& e) {
    throw Error("'" + path + "' is malformed: " + e.what());
  }
}

const FileRecord* Manifest::file(const std::string& name) const {
  for (const auto& f : files)
    if (f.name == name) return &f;
  return nullptr;
}

FileRecord write_small_file(const std::string& path, const std::string& content, uint64_t block_bytes) {
  io::write_file_atomic(path, content);
  return {fs::path(path).filename().string(), content.size(), io::block_digest(content.data(), content.size(), block_bytes)};
}

std::string read_verified(const std::string& dir, const FileRecord& rec, uint64_t block_bytes) {
  const std::string path = (fs::path(dir) / rec.name).string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(rec.name + " is missing or unreadable");
  std::string content((std::istreambuf_iterator<char>(in)), {});
  if (content.size() != rec.bytes)
    throw Error(rec.name + " has " + std::to_string(content.size()) + " bytes, the manifest says " +
                std::to_string(rec.bytes) + " (truncated?)");
  if (io::block_digest(content.data(), content.size(), block_bytes) != rec.digest)
    throw Error(rec.name + " fails its checksum (damaged after it was written)");
  return content;
}

bool is_checkpoint_dir(const std::string& dir) { return fs::is_regular_file(fs::path(dir) / kManifest); }

void for_each_checkpoint_weight(const std::string& dir, const std::vector<std::string>& prefixes,
                                const std::function<void(const std::string&, const torch::Tensor&)>& fn) {
  const auto man = Manifest::read(dir);
  const auto& space = man.params;
  // Every part mapped and checked first: nothing is handed out from a damaged checkpoint.
  struct Slice {
    size_t part;
    int64_t begin;
    const TensorEntry* entry;
  };
  std::vector<std::unique_ptr<MappedFile>> parts;
  std::vector<SafetensorsIndex> indexes(static_cast<size_t>(man.world_size));
  std::vector<std::vector<Slice>> weights(space.size());
  for (int r = 0; r < man.world_size; ++r) {
    const auto& rec = *man.file(part_file(r));
    const std::string path = (fs::path(dir) / rec.name).string();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != rec.bytes)
      throw Error("'" + path + "' is missing or not the " + std::to_string(rec.bytes) + " bytes the manifest says");
    parts.push_back(std::make_unique<MappedFile>(path));
    if (block_digest(parts.back()->data(), parts.back()->size(), man.block_bytes, 2) != rec.digest)
      throw Error("'" + path + "' fails its checksum (damaged after it was written)");
    indexes[r] = index_safetensors(parts.back()->data(), parts.back()->size(), path);
    for (const auto& e : indexes[r].tensors) {
      Field field;
      std::string name;
      int64_t begin = 0;
      if (!parse_piece_name(e.name, &field, &name, &begin) || field != Field::kWeight) continue;
      const int64_t k = space.find(name);
      if (k < 0 || e.dtype != space.dtypes[k] || e.shape.size() != 1 || begin < 0 || begin + e.shape[0] > space.numel(k))
        throw Error("'" + path + "': '" + e.name + "' does not fit the manifest's parameters");
      weights[k].push_back({static_cast<size_t>(r), begin, &e});
    }
  }
  for (size_t k = 0; k < space.size(); ++k) {
    const auto& name = space.names[k];
    if (!prefixes.empty() &&
        std::none_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) { return name.rfind(p, 0) == 0; }))
      continue;
    auto t = torch::empty(space.shapes[k], torch::TensorOptions().dtype(space.dtypes[k]));
    auto* data = static_cast<char*>(t.data_ptr());
    const size_t esize = t.element_size();
    int64_t covered = 0;
    for (const auto& [r, begin, e] : weights[k]) {
      std::memcpy(data + begin * esize, parts[r]->data() + e->offset, e->bytes);
      covered += e->shape[0];
    }
    if (covered != space.numel(k))
      throw Error("checkpoint '" + dir + "': its parts hold " + std::to_string(covered) + " of the " +
                  std::to_string(space.numel(k)) + " elements of " + name);
    fn(name, t);
  }
}

NamedTensors read_checkpoint_weights(const std::string& dir, const std::vector<std::string>& prefixes) {
  NamedTensors out;
  for_each_checkpoint_weight(dir, prefixes, [&](const std::string& n, const torch::Tensor& t) { out.emplace_back(n, t); });
  return out;
}

}  // namespace aim::io::ckpt
