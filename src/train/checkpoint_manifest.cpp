// manifest.json, the file that makes a checkpoint complete, and the small checksummed files
// beside the parts (meta.json, loader_rank<R>.json).
#include <filesystem>
#include <fstream>
#include <iterator>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/checksum.h"
#include "checkpoint_parts.h"

namespace fs = std::filesystem;

namespace aim::train::ckpt {

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

}  // namespace aim::train::ckpt
