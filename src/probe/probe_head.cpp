#include "aim/probe/probe_head.h"

#include <torch/torch.h>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"
#include "aim/io/weights_file.h"
#include "aim/model/hub_config.h"

#include <filesystem>

namespace aim::probe {

ProbeHeadImpl::ProbeHeadImpl(const std::string& kind, int64_t dim, int64_t heads, int64_t classes)
    : kind_(kind), dim_(dim), classes_(classes) {
  if (classes < 1) throw Error("probe: the class count must be >= 1, got " + std::to_string(classes));
  if (kind == "attentive") {
    if (heads < 1 || dim % heads != 0)
      throw Error("probe: attentive probe width " + std::to_string(dim) + " is not divisible by " +
                  std::to_string(heads) + " heads");
    attentive_ = register_module("head", model::AttentionPoolingProbe(dim, heads, classes));
  } else if (kind == "linear") {
    linear_ = register_module("head", model::LinearProbe(dim, classes));
  } else {
    throw Error("probe.kind: expected attentive or linear, got '" + kind + "'");
  }
}

torch::Tensor ProbeHeadImpl::forward(const torch::Tensor& features) {
  return attentive_ ? attentive_->forward(features) : linear_->forward(features);
}

void save_probe(const std::string& path, ProbeHead& head, int64_t heads,
                const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> meta = extra;
  meta["format"] = "pt";
  meta["probe_kind"] = head->kind();
  meta["classes"] = std::to_string(head->classes());
  meta["dim"] = std::to_string(head->dim());
  meta["heads"] = std::to_string(heads);
  io::NamedTensors tensors;
  for (auto& [name, t] : io::state_dict(*head)) tensors.emplace_back(name, t.detach().cpu().contiguous());
  io::save_safetensors(path, tensors, meta);
}

ProbeHead load_probe(const std::string& probe_path, int64_t heads, std::map<std::string, std::string>* metadata) {
  // A hub model directory holds its head in model.safetensors; config.json says the heads.
  std::string path = probe_path;
  if (model::is_hub_dir(probe_path)) {
    heads = model::read_hub_config(probe_path).num_heads;
    path = model::hub_weights_file(probe_path);
    if (path.empty()) throw Error("probe file '" + probe_path + "': a hub model directory without its weights file");
  }
  io::SafetensorsFile file = io::load_weights_file(path);
  auto find = [&](const std::string& name) -> const torch::Tensor* {
    for (const auto& [n, t] : file.tensors)
      if (n == name) return &t;
    return nullptr;
  };
  const torch::Tensor* w = find("head.linear.weight");
  if (!w || w->dim() != 2)
    throw Error("probe file '" + path + "': no 2-D head.linear.weight; not a probe written by aim-probe or an "
                "official checkpoint with an attentive head");
  std::string kind = file.metadata.count("probe_kind") ? file.metadata.at("probe_kind")
                                                       : (find("head.cls_token") ? "attentive" : "linear");
  if (file.metadata.count("heads")) {
    try {
      heads = std::stoll(file.metadata.at("heads"));
    } catch (const std::exception&) {
      throw Error("probe file '" + path + "': metadata 'heads' is not a number");
    }
  }
  ProbeHead head(kind, w->size(1), heads, w->size(0));
  if (w->is_floating_point()) head->to(w->scalar_type());  // keep the file's precision
  io::load_state_dict(*head, file.tensors, path, {"head."});
  if (metadata) *metadata = file.metadata;
  return head;
}

}  // namespace aim::probe
