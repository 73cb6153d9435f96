#include "aim/probe/class_labels.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "aim/data/image_folder_source.h"
#include "aim/error.h"

namespace aim::probe {

std::vector<std::string> split_class_names(const std::optional<data::SourceConfig>& split) {
  if (split && split->kind == "image_folder" && std::filesystem::is_directory(split->root))
    return data::ImageFolderSource(split->root).classes();
  return {};
}

torch::Tensor LabelMap::apply(const torch::Tensor& labels) const {
  if (!lookup.defined()) return labels;
  // Unlabelled samples (-1) stay -1, and the label range is checked before this runs.
  auto valid = labels.ge(0).logical_and(labels.lt(lookup.size(0)));
  auto mapped = lookup.to(labels.device()).index_select(0, labels.clamp(0, lookup.size(0) - 1));
  return torch::where(valid, mapped, labels);
}

std::string join_names(const std::vector<std::string>& names, size_t max) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < max; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > max) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out.empty() ? "(none)" : out;
}

LabelMap match_classes(const std::vector<std::string>& reference, const std::string& reference_what,
                       const std::vector<std::string>& other, const std::string& other_what, const std::string& mode) {
  LabelMap out;
  if (mode == "position" || reference.empty() || other.empty()) return out;
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < reference.size(); ++i) index[reference[i]] = static_cast<int64_t>(i);
  std::vector<std::string> only_other, only_reference;
  for (const auto& n : other)
    if (!index.count(n)) only_other.push_back(n);
  for (const auto& n : reference)
    if (std::find(other.begin(), other.end(), n) == other.end()) only_reference.push_back(n);
  const bool subset_ok = mode == "subset" && only_other.empty();
  if (!(only_other.empty() && only_reference.empty()) && !subset_ok) {
    std::string msg = other_what + " and " + reference_what + " name different classes: ";
    if (!only_other.empty()) msg += "only in " + other_what + ": " + join_names(only_other) + "; ";
    if (!only_reference.empty()) msg += "only in " + reference_what + ": " + join_names(only_reference) + "; ";
    msg += reference_what + " has [" + join_names(reference) + "], " + other_what + " has [" + join_names(other) + "]. ";
    msg += only_other.empty()
               ? "If evaluating on a subset of the classes is meant, set probe.class_match=subset"
               : "Labels are matched by class name (probe.class_match=names); probe.class_match=position matches them "
                 "by index instead, if the names differ on purpose";
    throw Error(msg);
  }
  std::vector<int64_t> lookup;
  bool identity = other.size() == reference.size();
  for (size_t i = 0; i < other.size(); ++i) {
    lookup.push_back(index.at(other[i]));
    identity = identity && lookup.back() == static_cast<int64_t>(i);
  }
  if (!identity) out.lookup = torch::tensor(lookup, torch::kInt64);
  return out;
}

std::string encode_class_names(const std::vector<std::string>& names) { return nlohmann::json(names).dump(); }

std::vector<std::string> decode_class_names(const std::string& text, const std::string& file) {
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.is_array()) {
      std::vector<std::string> out;
      for (const auto& v : j) {
        if (!v.is_string()) throw Error("");
        out.push_back(v.get<std::string>());
      }
      return out;
    }
  } catch (const std::exception&) {
  }
  throw Error("probe file '" + file + "': metadata 'class_names' is not a JSON array of strings");
}

}  // namespace aim::probe
