// aim-train --consolidate: one safetensors file of a sharded checkpoint's weights.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/checksum.h"
#include "aim/io/mapped_file.h"
#include "aim/train/checkpoint.h"
#include "checkpoint_parts.h"

namespace fs = std::filesystem;

namespace aim::train {
namespace {

// `dir` itself when it holds a manifest, else the newest complete checkpoint under it (a run
// directory, or its checkpoints/ folder).
std::string checkpoint_dir(const std::string& dir) {
  if (fs::exists(fs::path(dir) / ckpt::kManifest)) return dir;
  for (const fs::path& root : {fs::path(dir) / "checkpoints", fs::path(dir)}) {
    if (!fs::is_directory(root)) continue;
    std::string best;
    for (const auto& e : fs::directory_iterator(root)) {
      const auto name = e.path().filename().string();
      if (e.is_directory() && name.rfind("step_", 0) == 0 && fs::exists(e.path() / ckpt::kManifest) &&
          (best.empty() || name.substr(0, 14) > fs::path(best).filename().string().substr(0, 14) ||
           (name.substr(0, 14) == fs::path(best).filename().string().substr(0, 14) && name.size() == 14)))
        best = e.path().string();
    }
    if (!best.empty()) return best;
  }
  throw Error("'" + dir + "' is neither a checkpoint (no manifest.json) nor a run directory with complete checkpoints");
}

}  // namespace

ConsolidateResult consolidate_checkpoint(const std::string& dir_in, const std::string& out_path) {
  ConsolidateResult out;
  out.checkpoint = checkpoint_dir(dir_in);
  const auto man = ckpt::Manifest::read(out.checkpoint);
  out.step = man.step;
  const auto& space = man.params;

  // Every part mapped and checked first: nothing is written from a damaged checkpoint.
  std::vector<std::unique_ptr<io::MappedFile>> parts;
  struct Slice {
    size_t part;
    int64_t begin;
    const io::TensorEntry* entry;
  };
  std::vector<std::vector<Slice>> weights(space.size());
  std::vector<io::SafetensorsIndex> indexes(static_cast<size_t>(man.world_size));
  for (int r = 0; r < man.world_size; ++r) {
    const auto& rec = *man.file(ckpt::part_file(r));
    const std::string path = (fs::path(out.checkpoint) / rec.name).string();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != rec.bytes)
      throw Error("'" + path + "' is missing or not the " + std::to_string(rec.bytes) + " bytes the manifest says");
    parts.push_back(std::make_unique<io::MappedFile>(path));
    if (io::block_digest(parts.back()->data(), parts.back()->size(), man.block_bytes, 2) != rec.digest)
      throw Error("'" + path + "' fails its checksum (damaged after it was written)");
    indexes[r] = io::index_safetensors(parts.back()->data(), parts.back()->size(), path);
    for (const auto& e : indexes[r].tensors) {
      ckpt::Field field;
      std::string name;
      int64_t begin = 0;
      if (!ckpt::parse_piece_name(e.name, &field, &name, &begin) || field != ckpt::Field::kWeight) continue;
      const int64_t k = space.find(name);
      if (k < 0 || e.dtype != space.dtypes[k] || e.shape.size() != 1 || begin < 0 || begin + e.shape[0] > space.numel(k))
        throw Error("'" + path + "': '" + e.name + "' does not fit the manifest's parameters");
      weights[k].push_back({static_cast<size_t>(r), begin, &e});
    }
  }

  std::vector<io::TensorSpec> specs;
  for (size_t k = 0; k < space.size(); ++k) specs.push_back({space.names[k], space.dtypes[k], space.shapes[k]});
  io::AtomicFileWriter writer(out_path);
  writer.write(io::safetensors_prefix(specs, {{"format", "pt"}, {"trained_steps", std::to_string(man.step)}}));
  for (size_t k = 0; k < space.size(); ++k) {
    const size_t esize = c10::elementSize(space.dtypes[k]);
    std::vector<char> data(static_cast<size_t>(space.numel(k)) * esize);
    int64_t covered = 0;
    for (const auto& [r, begin, e] : weights[k]) {
      std::memcpy(data.data() + begin * esize, parts[r]->data() + e->offset, e->bytes);
      covered += e->shape[0];
    }
    if (covered != space.numel(k))
      throw Error("checkpoint '" + out.checkpoint + "': its parts hold " + std::to_string(covered) + " of the " +
                  std::to_string(space.numel(k)) + " elements of " + space.names[k]);
    writer.write(data.data(), data.size());
    out.bytes += data.size();
    ++out.tensors;
  }
  writer.commit();
  return out;
}

}  // namespace aim::train
