#pragma once
// One schema (the key table), reader and validation per config section; run_config.cpp
// composes them, schema.cpp derives the key tree from the tables, emit.cpp writes them.
// Internal to src/config: not part of the public API (include/aim/config/run_config.h).
#include <set>
#include <string>
#include <vector>

#include "aim/config/run_config.h"
#include "field_io.h"

namespace aim::config::detail {

// model: (model_section.cpp)
const std::vector<Field<model::ModelConfig>>& model_fields();
model::ModelConfig read_model(const Node& n, const Ctx& c);
/// When an override changes model.preset, model keys in the file that merely restate the
/// file's preset follow the new preset; keys that customize it stay.
void drop_restated_model_keys(Node& root, const std::string& file_preset, const Ctx& c);
bool same(const model::ModelConfig& a, const model::ModelConfig& b);

// data: (data_section.cpp)
const std::vector<Field<data::SourceConfig>>& source_fields();
const std::vector<Field<data::AugmentConfig>>& augment_fields();
const std::vector<Field<DataSection>>& data_fields();
/// Keys to_yaml writes for a source of this kind (others only when they differ from the default).
bool relevant(const std::string& kind, const std::string& key);
data::SourceConfig read_source(const Node& n, const std::string& key, const std::string& default_name, const Ctx& c);
void read_data_section(DataSection& d, const Node& n, const Ctx& c);
void validate_source(const data::SourceConfig& s, const std::string& key, bool train, int world_size, bool check_paths);
void validate_data_section(const DataSection& d, int world_size, bool check_paths);
bool same(const data::SourceConfig& a, const data::SourceConfig& b);
bool same(const data::AugmentConfig& a, const data::AugmentConfig& b);
bool same_optional(const std::optional<data::SourceConfig>& a, const std::optional<data::SourceConfig>& b);

// optim: (optim_section.cpp)
const std::vector<Field<optim::OptimConfig>>& optim_fields();
void validate_optim_section(const optim::OptimConfig& o);
bool same(const optim::OptimConfig& a, const optim::OptimConfig& b);

// train: (train_section.cpp)
const std::vector<Field<TrainConfig>>& train_fields();
void validate_train_section(const TrainConfig& t, int world_size);

// probe: (probe_section.cpp)
const std::vector<Field<ProbeConfig>>& probe_fields();
const std::vector<Field<KnnConfig>>& knn_fields();
void read_probe_section(ProbeConfig& p, const Node& n, const Ctx& c);
/// `from_training` when aim-train probes its own export (weights optional); without
/// `needs_train_split` (evaluating a saved probe) probe.train may be absent.
void validate_probe_section(const RunConfig& cfg, int world_size, bool check_paths, bool from_training,
                            bool needs_train_split = true);

// The key tree and overrides: (schema.cpp)
struct Schema;
const Schema& root_schema();
/// Applies one key=value to the tree; returns the display path it set.
std::string apply_override(Node& root, const std::string& text, Ctx& c);
/// Unknown keys anywhere in the tree, with a did-you-mean.
void check_keys(const Node& root, const Ctx& c);

}  // namespace aim::config::detail
