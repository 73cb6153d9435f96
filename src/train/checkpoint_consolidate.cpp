// aim-train --consolidate: one safetensors file of a sharded checkpoint's weights.
#include <filesystem>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/sharded_checkpoint.h"
#include "aim/train/checkpoint.h"

namespace fs = std::filesystem;

namespace aim::train {
namespace {

// `dir` itself when it holds a manifest, else the newest complete checkpoint under it (a run
// directory, or its checkpoints/ folder); a finished directory wins over a .partial one.
std::string checkpoint_dir(const std::string& dir) {
  if (io::ckpt::is_checkpoint_dir(dir)) return dir;
  for (const fs::path& root : {fs::path(dir) / "checkpoints", fs::path(dir)}) {
    if (!fs::is_directory(root)) continue;
    std::string best, best_name;
    for (const auto& e : fs::directory_iterator(root)) {
      const auto name = e.path().filename().string();
      if (!e.is_directory() || name.rfind("step_", 0) != 0 || !io::ckpt::is_checkpoint_dir(e.path().string())) continue;
      // step_N sorts before step_N.partial: take the greater step, and for one step the plain name.
      const auto step = name.substr(0, 14), best_step = best_name.substr(0, std::min<size_t>(14, best_name.size()));
      if (best.empty() || step > best_step || (step == best_step && name.size() < best_name.size())) {
        best = e.path().string();
        best_name = name;
      }
    }
    if (!best.empty()) return best;
  }
  throw Error("'" + dir + "' is neither a checkpoint (no manifest.json) nor a run directory with complete checkpoints");
}

}  // namespace

ConsolidateResult consolidate_checkpoint(const std::string& dir_in, const std::string& out_path) {
  ConsolidateResult out;
  out.checkpoint = checkpoint_dir(dir_in);
  const auto man = io::ckpt::Manifest::read(out.checkpoint);
  out.step = man.step;
  std::vector<io::TensorSpec> specs;
  for (size_t k = 0; k < man.params.size(); ++k) specs.push_back({man.params.names[k], man.params.dtypes[k], man.params.shapes[k]});
  io::AtomicFileWriter writer(out_path);  // removed unless every parameter was written
  writer.write(io::safetensors_prefix(specs, {{"format", "pt"}, {"trained_steps", std::to_string(man.step)}}));
  io::ckpt::for_each_checkpoint_weight(out.checkpoint, {}, [&](const std::string&, const torch::Tensor& t) {
    writer.write(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
    out.bytes += t.numel() * t.element_size();
    ++out.tensors;
  });
  writer.commit();
  return out;
}

}  // namespace aim::train
