#pragma once
// Class labels matched by name, never silently by position: probe.train, probe.val and the
// class names a saved probe carries must name the same classes (probe.class_match), and a
// split that holds a subset of them gets its labels mapped onto the reference's indices.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "aim/data/loader.h"

namespace aim::probe {

/// The class names a split knows: an ImageFolder's sorted folder names; empty for sources
/// without names (idx, synthetic, webdataset .cls integers).
std::vector<std::string> split_class_names(const std::optional<data::SourceConfig>& split);

/// Labels of one side mapped onto the reference's class indices.
struct LabelMap {
  torch::Tensor lookup;  // int64 [other's classes] -> reference index; undefined = identity
  /// labels (any device) -> reference indices; identity when no lookup is needed.
  torch::Tensor apply(const torch::Tensor& labels) const;
  bool identity() const { return !lookup.defined(); }
};

/// How `other`'s labels map onto `reference`'s (mode: probe.class_match). "names": the same
/// set of names (a mapping when their order differs); "subset": every name of `other` must be
/// in `reference`; "position": identity. When either side has no names, identity (the class
/// counts are checked elsewhere). A mismatch throws aim::Error listing the names only on each
/// side, both sides' names, and the probe.class_match setting that would accept a subset.
LabelMap match_classes(const std::vector<std::string>& reference, const std::string& reference_what,
                       const std::vector<std::string>& other, const std::string& other_what,
                       const std::string& mode);

/// "cool, dark, warm" (at most `max` names, then "... (N in all)").
std::string join_names(const std::vector<std::string>& names, size_t max = 12);

/// Class names as stored in a probe file's metadata ("class_names": a JSON array) and back.
std::string encode_class_names(const std::vector<std::string>& names);
std::vector<std::string> decode_class_names(const std::string& json, const std::string& file);

}  // namespace aim::probe
