// The `model:` section: presets (model.preset) with explicit keys overriding them.
#include "sections.h"

#include <tuple>

namespace aim::config::detail {
namespace {

const std::vector<std::string> kOrders = {"raster", "spiral", "checkerboard", "random"};

}  // namespace

bool same(const model::ModelConfig& a, const model::ModelConfig& b) {
  return std::tie(a.preset, a.img_size, a.patch_size, a.channels, a.width, a.depth, a.heads,
                  a.mlp_ratio, a.head_width, a.head_blocks, a.head_mlp_ratio, a.head_identity_attn,
                  a.norm_eps, a.attention, a.order, a.order_seed, a.target) ==
         std::tie(b.preset, b.img_size, b.patch_size, b.channels, b.width, b.depth, b.heads,
                  b.mlp_ratio, b.head_width, b.head_blocks, b.head_mlp_ratio, b.head_identity_attn,
                  b.norm_eps, b.attention, b.order, b.order_seed, b.target);
}

const std::vector<Field<model::ModelConfig>>& model_fields() {
  using M = model::ModelConfig;
  static const std::vector<Field<M>> f = {
      {"preset", nullptr, [](YAML::Emitter& e, const M& m) { emit(e, m.preset); }},  // read specially
      plain("img_size", &M::img_size),
      plain("patch_size", &M::patch_size),
      plain("channels", &M::channels),
      plain("width", &M::width),
      plain("depth", &M::depth),
      plain("heads", &M::heads),
      plain("mlp_ratio", &M::mlp_ratio),
      plain("head_width", &M::head_width),
      plain("head_blocks", &M::head_blocks),
      plain("head_mlp_ratio", &M::head_mlp_ratio),
      plain("head_identity_attn", &M::head_identity_attn),
      plain("norm_eps", &M::norm_eps),
      {"attention",
       [](M& m, const Node& n, const std::string& k, const Ctx& c) {
         m.attention = model::attention_mode_from_string(get_choice(k, n, c, {"prefix", "causal", "bidirectional"}));
       },
       [](YAML::Emitter& e, const M& m) { emit(e, model::to_string(m.attention)); }},
      choice("order", &M::order, kOrders),
      plain("order_seed", &M::order_seed),
      {"target",
       [](M& m, const Node& n, const std::string& k, const Ctx& c) {
         m.target = model::target_kind_from_string(get_choice(k, n, c, {"norm_pixel", "pixel"}));
       },
       [](YAML::Emitter& e, const M& m) { emit(e, model::to_string(m.target)); }},
  };
  return f;
}

model::ModelConfig read_model(const Node& n, const Ctx& c) {
  std::string preset = "aim-600m";
  if (n.IsDefined() && !n.IsNull() && n["preset"].IsDefined())
    preset = get_choice("model.preset", n["preset"], c, model::preset_names());
  model::ModelConfig m = model::preset_config(preset);
  read_section(m, n, model_fields(), "model", c);
  return m;
}

void drop_restated_model_keys(Node& root, const std::string& file_preset, const Ctx& c) {
  Node m = root["model"];
  if (!m.IsMap()) return;
  model::ModelConfig base;
  try {
    base = model::preset_config(file_preset);
  } catch (const Error&) {
    return;
  }
  std::vector<std::string> drop;
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    std::string k = it->first.Scalar();
    const Field<model::ModelConfig>* f = find_field(model_fields(), k);
    if (!f || !f->read || c.override_for("model." + k)) continue;
    model::ModelConfig t = base;
    try {
      f->read(t, it->second, "model." + k, c);
    } catch (const Error&) {
      continue;  // reported by the conversion
    }
    if (emit_field(*f, t) == emit_field(*f, base)) drop.push_back(k);
  }
  for (const auto& k : drop) m.remove(k);
}

}  // namespace aim::config::detail
