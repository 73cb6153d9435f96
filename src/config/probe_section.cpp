// The `probe:` section: aim-probe's grid of heads on a frozen trunk (spec §8), and
// aim-train's optional probe at the end.
#include "sections.h"

#include <cmath>
#include <filesystem>
#include <tuple>

#include "aim/model/layer_selection.h"
#include "aim/model/lora.h"

namespace aim::config {

namespace fs = std::filesystem;

bool ProbeConfig::operator==(const ProbeConfig& o) const {
  return std::tie(weights, kind, features, blocks, classes, epochs, batch_size, lrs, weight_decays, warmup,
                  label_smoothing, augment, crop_scale_min, crop_scale_max, hflip, cache_gb, epoch_size, seed,
                  out_dir, at_end, lora_rank, lora_alpha, lora_lr, export_hub, select_fraction, beta1, beta2, eps,
                  grad_clip, knn, class_match) ==
             std::tie(o.weights, o.kind, o.features, o.blocks, o.classes, o.epochs, o.batch_size, o.lrs,
                      o.weight_decays, o.warmup, o.label_smoothing, o.augment, o.crop_scale_min, o.crop_scale_max,
                      o.hflip, o.cache_gb, o.epoch_size, o.seed, o.out_dir, o.at_end, o.lora_rank,
                      o.lora_alpha, o.lora_lr, o.export_hub, o.select_fraction, o.beta1, o.beta2, o.eps,
                      o.grad_clip, o.knn, o.class_match) &&
         detail::same_optional(train_data, o.train_data) && detail::same_optional(val_data, o.val_data);
}

namespace detail {
namespace {

const std::vector<std::string> kProbeKinds = {"attentive", "linear"};
const std::vector<std::string> kProbeFeatures = {"trunk", "pixels"};
const std::vector<std::string> kClassMatch = {"names", "subset", "position"};

}  // namespace

const std::vector<Field<config::KnnConfig>>& knn_fields() {
  using K = config::KnnConfig;
  static const std::vector<Field<K>> f = {plain("k", &K::k), plain("temperature", &K::temperature)};
  return f;
}

const std::vector<Field<config::ProbeConfig>>& probe_fields() {
  using P = config::ProbeConfig;
  static const std::vector<Field<P>> f = {
      plain("weights", &P::weights),
      choice("kind", &P::kind, kProbeKinds),
      choice("features", &P::features, kProbeFeatures),
      plain("blocks", &P::blocks),
      {"train", nullptr, nullptr},  // a source, or null
      {"val", nullptr, nullptr},    // a source, or null
      plain("classes", &P::classes),
      plain("epochs", &P::epochs),
      plain("batch_size", &P::batch_size),
      {"lrs", [](P& p, const Node& n, const std::string& k, const Ctx& c) { p.lrs = get_double_list(k, n, c); },
       [](YAML::Emitter& e, const P& p) { emit_double_list(e, p.lrs); }},
      {"weight_decays",
       [](P& p, const Node& n, const std::string& k, const Ctx& c) { p.weight_decays = get_double_list(k, n, c); },
       [](YAML::Emitter& e, const P& p) { emit_double_list(e, p.weight_decays); }},
      plain("warmup", &P::warmup),
      plain("label_smoothing", &P::label_smoothing),
      plain("augment", &P::augment),
      pair("crop_scale", &P::crop_scale_min, &P::crop_scale_max),
      plain("hflip", &P::hflip),
      plain("cache_gb", &P::cache_gb),
      plain("epoch_size", &P::epoch_size),
      plain("seed", &P::seed),
      plain("out_dir", &P::out_dir),
      plain("at_end", &P::at_end),
      plain("lora_rank", &P::lora_rank),
      plain("lora_alpha", &P::lora_alpha),
      plain("lora_lr", &P::lora_lr),
      plain("export_hub", &P::export_hub),
      plain("select_fraction", &P::select_fraction),
      pair("betas", &P::beta1, &P::beta2),
      plain("eps", &P::eps),
      plain("grad_clip", &P::grad_clip),
      {"knn",
       [](P& p, const Node& n, const std::string& k, const Ctx& c) {
         if (!n.IsNull()) read_section(p.knn, n, knn_fields(), k, c);
       },
       [](YAML::Emitter& e, const P& p) {
         e << YAML::BeginMap;
         for (const auto& kf : knn_fields()) {
           e << YAML::Key << kf.name << YAML::Value;
           kf.write(e, p.knn);
         }
         e << YAML::EndMap;
       }},
      choice("class_match", &P::class_match, kClassMatch),
  };
  return f;
}

void read_probe_section(ProbeConfig& probe, const Node& p, const Ctx& c) {
  if (!p.IsDefined() || p.IsNull()) return;
  read_section(probe, p, probe_fields(), "probe", c);
  if (p["train"].IsDefined() && !p["train"].IsNull())
    probe.train_data = read_source(p["train"], "probe.train", "probe-train", c);
  if (p["val"].IsDefined() && !p["val"].IsNull())
    probe.val_data = read_source(p["val"], "probe.val", "probe-val", c);
}

void validate_probe_section(const RunConfig& cfg, int world_size, bool check_paths, bool from_training,
                            bool needs_train_split) {
  const config::ProbeConfig& p = cfg.probe;
  if (p.weights.empty() && !from_training && p.features == "trunk")
    fail("probe.weights", "required: a .safetensors file (our trunk export or an official checkpoint), a run "
                          "directory, or 'random' for a randomly initialized trunk");
  if (!p.weights.empty() && p.weights != "random" && check_paths && !fs::exists(p.weights))
    fail("probe.weights", "'" + p.weights + "' does not exist (expected a .safetensors file or a run directory)");
  if (std::find(kProbeKinds.begin(), kProbeKinds.end(), p.kind) == kProbeKinds.end())
    fail("probe.kind", expect_one_of(p.kind, kProbeKinds));
  if (std::find(kProbeFeatures.begin(), kProbeFeatures.end(), p.features) == kProbeFeatures.end())
    fail("probe.features", expect_one_of(p.features, kProbeFeatures));
  if (p.features == "pixels" && p.kind != "linear")
    fail("probe.kind", "features=pixels is the raw-pixel baseline and takes kind=linear, got '" + p.kind + "'");
  if (p.features == "trunk") model::select_blocks(p.blocks, cfg.model, "probe.blocks");
  if (!p.train_data && needs_train_split)
    fail("probe.train", "required: the labelled training split (e.g. {kind: idx, split: train})");
  if (!p.val_data) fail("probe.val", "required: the labelled evaluation split (e.g. {kind: idx, split: test})");
  if (p.train_data) validate_source(*p.train_data, "probe.train", true, world_size, check_paths);
  validate_source(*p.val_data, "probe.val", false, world_size, check_paths);
  if (p.classes < 0) fail("probe.classes", "must be >= 0 (0 = from the data), got " + num(p.classes));
  if (p.epochs <= 0) fail("probe.epochs", "must be > 0, got " + num(p.epochs));
  if (p.batch_size <= 0) fail("probe.batch_size", "must be > 0, got " + num(p.batch_size));
  if (p.batch_size % world_size != 0)
    fail("probe.batch_size", num(p.batch_size) + " is not divisible by the world size " + std::to_string(world_size));
  if (p.lrs.empty()) fail("probe.lrs", "needs at least one learning rate");
  for (double lr : p.lrs)
    if (!(lr > 0) || !std::isfinite(lr)) fail("probe.lrs", "every learning rate must be > 0, got " + num(lr));
  if (p.weight_decays.empty()) fail("probe.weight_decays", "needs at least one weight decay");
  for (double wd : p.weight_decays)
    if (!(wd >= 0) || !std::isfinite(wd)) fail("probe.weight_decays", "every weight decay must be >= 0, got " + num(wd));
  if (!(p.warmup >= 0 && p.warmup < 1))
    fail("probe.warmup", "is a fraction of the probe's steps, in [0, 1); got " + num(p.warmup));
  if (!(p.label_smoothing >= 0 && p.label_smoothing < 1))
    fail("probe.label_smoothing", "must be in [0, 1), got " + num(p.label_smoothing));
  if (!(p.crop_scale_min > 0 && p.crop_scale_min <= p.crop_scale_max && p.crop_scale_max <= 1))
    fail("probe.crop_scale", "must satisfy 0 < min <= max <= 1, got [" + num(p.crop_scale_min) + ", " +
                                 num(p.crop_scale_max) + "]");
  check_prob("probe.hflip", p.hflip);
  if (!(p.cache_gb >= 0) || !std::isfinite(p.cache_gb))
    fail("probe.cache_gb", "must be >= 0 (0 = never cache features), got " + num(p.cache_gb));
  if (p.epoch_size < 0)
    fail("probe.epoch_size", "must be >= 0 (0 = the training split's size), got " + num(p.epoch_size));
  // LoRA adapts the trunk: there must be one, and one head to adapt it for.
  model::check_lora_rank(p.lora_rank, cfg.model.width, "probe.lora_rank");
  if (p.lora_rank > 0 && p.features != "trunk")
    fail("probe.lora_rank", "LoRA adapts the trunk's attention; features=" + p.features +
                                " (the pixel baseline) has no trunk. Set probe.lora_rank=0 or features=trunk");
  if (p.lora_rank > 0 && p.lrs.size() * p.weight_decays.size() != 1)
    fail("probe.lrs", "with probe.lora_rank > 0 every head adapts its own trunk, so the grid is one head: give one "
                      "learning rate and one weight decay (got " + std::to_string(p.lrs.size()) + " x " +
                      std::to_string(p.weight_decays.size()) + ")");
  if (!(p.lora_alpha > 0) || !std::isfinite(p.lora_alpha))
    fail("probe.lora_alpha", "must be > 0 (loralib's default is 1), got " + num(p.lora_alpha));
  if (!(p.lora_lr >= 0) || !std::isfinite(p.lora_lr))
    fail("probe.lora_lr", "must be >= 0 (0 = the head's learning rate), got " + num(p.lora_lr));
  if (!p.export_hub.empty() && (p.kind != "attentive" || p.features != "trunk"))
    fail("probe.export_hub", "a hub model directory holds a trunk and an attentive head (AIMForImageClassification); "
                             "needs kind=attentive and features=trunk, got kind=" + p.kind + ", features=" + p.features);
  if (!(p.beta1 >= 0 && p.beta1 < 1 && p.beta2 >= 0 && p.beta2 < 1))
    fail("probe.betas", "both must be in [0, 1) (AdamW's default is [0.9, 0.999]), got [" + num(p.beta1) + ", " +
                            num(p.beta2) + "]");
  if (!(p.eps > 0) || !std::isfinite(p.eps)) fail("probe.eps", "must be > 0 (AdamW's default is 1e-8), got " + num(p.eps));
  if (!(p.grad_clip >= 0) || !std::isfinite(p.grad_clip))
    fail("probe.grad_clip", "must be >= 0 (0 = no clipping), got " + num(p.grad_clip));
  if (p.knn.k < 0) fail("probe.knn.k", "must be >= 0 (0 = no kNN evaluation; DINO uses 20), got " + num(p.knn.k));
  if (!(p.knn.temperature > 0) || !std::isfinite(p.knn.temperature))
    fail("probe.knn.temperature", "must be > 0 (DINO uses 0.07), got " + num(p.knn.temperature));
  if (std::find(kClassMatch.begin(), kClassMatch.end(), p.class_match) == kClassMatch.end())
    fail("probe.class_match", expect_one_of(p.class_match, kClassMatch));
  if (!(p.select_fraction >= 0 && p.select_fraction < 1))
    fail("probe.select_fraction",
         "is the share of probe.train held out to choose the best head, in [0, 1) (0 = choose on probe.val); got " +
             num(p.select_fraction));
}

}  // namespace detail
}  // namespace aim::config
