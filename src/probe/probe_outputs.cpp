#include "probe_outputs.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "aim/io/atomic_file.h"
#include "aim/model/lora.h"
#include "aim/model/model_stats.h"
#include "aim/model/trunk_weights.h"
#include "aim/probe/class_labels.h"
#include "aim/probe/hub_export.h"
#include "aim/probe/peft_adapter.h"
#include "saved_probe.h"

namespace fs = std::filesystem;

namespace aim::probe::detail {
namespace {

nlohmann::json head_json(const HeadResult& r, bool top5) {
  nlohmann::json j = {{"lr", r.lr}, {"weight_decay", r.weight_decay}, {"train_loss", r.train_loss},
                      {"val_loss", r.val_loss}, {"top1", r.top1}};
  // With 5 classes or fewer every label is in the top 5: the number would say nothing.
  j["top5"] = top5 ? nlohmann::json(r.top5) : nlohmann::json(nullptr);
  if (r.select_top1 >= 0) j.update({{"select_loss", r.select_loss}, {"select_top1", r.select_top1}});
  return j;
}

std::string selection_note(const ProbeReport& r) {
  if (r.selection == "train_holdout")
    return r.heads.size() > 1
               ? "best head chosen on a held-out part of probe.train (never trained on); top1 is on probe.val"
               : "one head, so nothing was chosen; select_top1 is its accuracy on the held-out part of probe.train, "
                 "for choosing between runs (e.g. LoRA learning rates) without looking at probe.val";
  if (r.selection == "none") return "one head, so nothing was chosen: its top1 on probe.val is not a grid's maximum";
  return "best head chosen on probe.val, the split its top1 is reported on (probe.select_fraction=0): an optimistic "
         "number";
}

}  // namespace

void write_probe_outputs(const ProbeOutputs& o) {
  const auto& cfg = o.cfg;
  const auto& pc = cfg.probe;
  const auto& report = o.report;
  const bool lora = pc.lora_rank > 0;
  fs::create_directories(report.out_dir);
  const auto& best = report.heads[report.best];
  nlohmann::json heads_json = nlohmann::json::array();
  for (const auto& r : report.heads) heads_json.push_back(head_json(r, report.has_top5()));
  nlohmann::json best_json = heads_json[report.best];
  best_json["index"] = report.best;
  nlohmann::json out = {
      {"weights", report.weights}, {"features", pc.features}, {"kind", pc.kind}, {"blocks", o.fx.blocks()},
      {"classes", report.classes}, {"train_samples", report.train_samples}, {"val_samples", report.val_samples},
      {"epochs", pc.epochs}, {"steps", report.steps}, {"batch_size", pc.batch_size},
      {"cached_features", report.cached}, {"world_size", o.world_size}, {"seconds", report.seconds},
      {"optimizer",
       {{"name", "AdamW"}, {"betas", {pc.beta1, pc.beta2}}, {"eps", pc.eps}, {"grad_clip", pc.grad_clip},
        {"warmup", pc.warmup}, {"schedule", "linear warmup from 0, then cosine to 0"}}},
      {"heads", heads_json}, {"best", best_json}, {"lr_at_edge", report.lr_at_edge},
      {"selection",
       {{"split", report.selection},
        {"fraction", report.selection == "train_holdout" ? pc.select_fraction : 0.0},
        {"samples", report.selection == "train_holdout" ? report.select_samples : report.val_samples},
        {"note", selection_note(report)}}},
      {"config", config::to_yaml(cfg)}};
  if (!report.class_names.empty()) out["class_names"] = report.class_names;
  if (report.knn.k > 0)
    out["knn"] = {{"k", report.knn.k},
                  {"temperature", report.knn.temperature},
                  {"top1", report.knn.top1},
                  {"top5", report.has_top5() ? nlohmann::json(report.knn.top5) : nlohmann::json(nullptr)},
                  {"bank", report.knn.bank},
                  {"features", "the probe's features averaged over tokens, L2-normalized (cosine similarity)"}};
  std::map<std::string, std::string> probe_meta = {
      {"features", pc.features},          {"blocks", pc.blocks}, {"block_indices", join_blocks(o.fx.blocks())},
      {"lr", std::to_string(best.lr)},    {"weight_decay", std::to_string(best.weight_decay)},
      {"top1", std::to_string(best.top1)}, {"trunk", report.weights}};
  if (!report.class_names.empty()) probe_meta["class_names"] = encode_class_names(report.class_names);
  if (lora) {
    // The adapted trunk three ways: its LoRA tensors in loralib's names (loads strictly into
    // the official LoraAttention), merged into plain weights (any trunk loader), and as a
    // peft adapter (PeftModel.from_pretrained on the official module tree).
    const std::map<std::string, std::string> lora_meta = {{"lora_rank", std::to_string(pc.lora_rank)},
                                                          {"lora_alpha", fmt::format("{}", pc.lora_alpha)},
                                                          {"base_trunk", report.weights}};
    const std::string merged = fs::absolute(fs::path(report.out_dir) / "trunk.safetensors").string();
    const std::string peft_dir = (fs::path(report.out_dir) / "peft_adapter").string();
    model::export_trunk((fs::path(report.out_dir) / "lora_trunk.safetensors").string(), *o.fx.encoder(), lora_meta);
    model::export_trunk_tensors(merged, model::merged_trunk_tensors(o.fx.encoder()), lora_meta);
    write_peft_adapter(peft_dir, o.fx.encoder(), report.weights);
    probe_meta.insert(lora_meta.begin(), lora_meta.end());
    probe_meta["adapted_trunk"] = merged;
    out["lora"] = {{"rank", pc.lora_rank},
                   {"alpha", pc.lora_alpha},
                   {"lr", o.lora_lr},
                   {"parameters", model::lora_parameters(cfg.model, pc.lora_rank)},
                   {"trunk_parameters", model::count_parameters(cfg.model).trunk},
                   {"merged_trunk", merged},
                   {"peft_adapter", fs::absolute(peft_dir).string()}};
  }
  io::write_file_atomic((fs::path(report.out_dir) / "results.json").string(), out.dump(2) + "\n");
  ProbeHead head = o.best;
  save_probe((fs::path(report.out_dir) / "probe.safetensors").string(), head, o.fx.heads(), probe_meta);
  if (!pc.export_hub.empty()) {
    HubCard card;
    card.trunk = lora ? report.weights + " + LoRA rank " + std::to_string(pc.lora_rank) + " (merged)" : report.weights;
    card.trunk_source = pc.weights;
    card.data = "train " + pc.train_data->kind + " (" + std::to_string(report.train_samples) + " images), val " +
                pc.val_data->kind + " (" + std::to_string(report.val_samples) + " images)";
    card.recipe = fmt::format("{} epochs, batch {}, AdamW lr {} wd {} betas ({}, {}), warmup {}{}{}", pc.epochs,
                              pc.batch_size, best.lr, best.weight_decay, pc.beta1, pc.beta2, pc.warmup,
                              pc.augment ? ", RandomResizedCrop + flip" : "",
                              lora ? fmt::format(", LoRA rank {} alpha {} lr {}", pc.lora_rank, pc.lora_alpha, o.lora_lr)
                                   : std::string());
    card.top1 = best.top1;
    card.val_samples = report.val_samples;
    card.class_names = report.class_names;
    // The hub's dataset id, where the data is known: Debian's Fashion-MNIST IDX files.
    if (pc.train_data->kind == "idx" && pc.train_data->path.find("fashion-mnist") != std::string::npos)
      card.datasets = {"zalando-datasets/fashion_mnist"};
    export_hub(pc.export_hub, cfg.model, model::merged_trunk_tensors(o.fx.encoder()), head, o.fx.blocks(), card);
    spdlog::info("probe: hub model directory written to {}", pc.export_hub);
  }
}

}  // namespace aim::probe::detail
