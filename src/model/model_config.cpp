#include "aim/model/model_config.h"

#include <sstream>

#include "aim/error.h"

namespace aim::model {
namespace {

struct Preset {
  const char* name;
  ModelConfig config;
};

ModelConfig official(const char* name, int64_t width, int64_t depth, int64_t heads) {
  ModelConfig c;
  c.preset = name;
  c.width = width;
  c.depth = depth;
  c.heads = heads;  // head dim 128 everywhere (spec §2)
  return c;
}

ModelConfig small(const char* name, int64_t img, int64_t patch, int64_t channels,
                  int64_t width, int64_t depth, int64_t heads, int64_t head_width,
                  int64_t head_blocks) {
  ModelConfig c;
  c.preset = name;
  c.img_size = img;
  c.patch_size = patch;
  c.channels = channels;
  c.width = width;
  c.depth = depth;
  c.heads = heads;
  c.head_width = head_width;
  c.head_blocks = head_blocks;
  return c;
}

const std::vector<Preset>& presets() {
  static const std::vector<Preset> table = {
      {"aim-600m", official("aim-600m", 1536, 24, 12)},
      {"aim-1b", official("aim-1b", 2048, 24, 16)},
      {"aim-3b", official("aim-3b", 3072, 24, 24)},
      {"aim-7b", official("aim-7b", 4096, 32, 32)},
      // Small presets for CPU work. aim-fmnist-* read 28x28 grayscale (Fashion-MNIST);
      // aim-small-32 and aim-small-224 are the two side-by-side benchmark shapes.
      {"aim-fmnist-tiny", small("aim-fmnist-tiny", 28, 4, 1, 128, 4, 2, 256, 2)},
      {"aim-fmnist-small", small("aim-fmnist-small", 28, 4, 1, 192, 6, 3, 384, 4)},
      {"aim-small-32", small("aim-small-32", 32, 4, 3, 192, 6, 3, 384, 2)},
      {"aim-small-224", small("aim-small-224", 224, 14, 3, 384, 6, 3, 512, 2)},
  };
  return table;
}

}  // namespace

void ModelConfig::validate() const {
  auto fail = [](const std::string& key, const std::string& msg) {
    throw Error("model." + key + ": " + msg);
  };
  if (img_size <= 0) fail("img_size", "must be positive, got " + std::to_string(img_size));
  if (patch_size <= 0) fail("patch_size", "must be positive, got " + std::to_string(patch_size));
  if (img_size % patch_size != 0)
    fail("img_size", "must be divisible by model.patch_size (" + std::to_string(img_size) +
                         " % " + std::to_string(patch_size) + " != 0)");
  if (num_tokens() < 2) fail("img_size", "needs at least 2 patches for next-patch prediction");
  if (channels != 1 && channels != 3) fail("channels", "must be 1 or 3, got " + std::to_string(channels));
  if (width <= 0 || heads <= 0) fail("width", "width and heads must be positive");
  if (width % heads != 0)
    fail("width", "must be divisible by model.heads (" + std::to_string(width) + " % " +
                      std::to_string(heads) + " != 0)");
  // The 2-D sin-cos embedding splits channels into 4 equal sin/cos groups (spec §2).
  if (width % 4 != 0) fail("width", "must be divisible by 4 for the 2-D sin-cos positions");
  if (head_width % 4 != 0 || head_width <= 0)
    fail("head_width", "must be a positive multiple of 4, got " + std::to_string(head_width));
  if (depth <= 0) fail("depth", "must be positive, got " + std::to_string(depth));
  if (head_blocks < 0) fail("head_blocks", "must be >= 0");
  if (mlp_ratio <= 0 || head_mlp_ratio <= 0) fail("mlp_ratio", "must be positive");
  if (!(norm_eps > 0)) fail("norm_eps", "must be > 0");
  if (order != "raster" && order != "spiral" && order != "checkerboard" && order != "random")
    fail("order", "expected one of raster, spiral, checkerboard, random; got '" + order + "'");
  if (order != "raster" && attention == AttentionMode::kPrefixCausal)
    fail("order", "non-raster orders are studied with causal attention (spec §7); set "
                  "model.attention=causal");
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : presets()) names.emplace_back(p.name);
  return names;
}

ModelConfig preset_config(const std::string& name) {
  for (const auto& p : presets())
    if (name == p.name) return p.config;
  std::ostringstream msg;
  msg << "model.preset: unknown preset '" << name << "'; expected one of:";
  for (const auto& p : presets()) msg << ' ' << p.name;
  throw Error(msg.str());
}

bool is_official_preset(const std::string& name) {
  return name == "aim-600m" || name == "aim-1b" || name == "aim-3b" || name == "aim-7b";
}

std::string to_string(AttentionMode mode) {
  switch (mode) {
    case AttentionMode::kPrefixCausal: return "prefix";
    case AttentionMode::kCausal: return "causal";
    case AttentionMode::kBidirectional: return "bidirectional";
  }
  return "?";
}

AttentionMode attention_mode_from_string(const std::string& s) {
  if (s == "prefix") return AttentionMode::kPrefixCausal;
  if (s == "causal") return AttentionMode::kCausal;
  if (s == "bidirectional") return AttentionMode::kBidirectional;
  throw Error("model.attention: expected prefix, causal or bidirectional; got '" + s + "'");
}

std::string to_string(TargetKind kind) {
  return kind == TargetKind::kNormalizedPixels ? "norm_pixel" : "pixel";
}

TargetKind target_kind_from_string(const std::string& s) {
  if (s == "norm_pixel") return TargetKind::kNormalizedPixels;
  if (s == "pixel") return TargetKind::kRawPixels;
  throw Error("model.target: expected norm_pixel or pixel; got '" + s + "'");
}

}  // namespace aim::model
