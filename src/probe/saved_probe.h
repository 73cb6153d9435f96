#pragma once
// What the saved-probe paths (--eval-only, --predict, --export-hub) and the probe run share:
// a probe file's own record of the features it was trained on and of its class names.
// Internal to src/probe.
#include <string>
#include <vector>

#include "aim/config/run_config.h"
#include "aim/dist/dist_env.h"

namespace aim::probe::detail {

/// The config a saved probe is applied with: the features and trunk blocks it was trained on
/// (its file's metadata, or a hub directory's config.json) replace the configured ones,
/// which would feed it other features; a warning names both when they differ (`log`).
/// Files without that metadata (official heads) keep the configured values.
config::RunConfig with_probe_file_features(const config::RunConfig& cfg, const std::string& probe_path, bool log);

/// The class names a probe file records ("class_names" metadata); empty when it has none
/// (official heads, hub directories, torch.save files).
std::vector<std::string> probe_file_class_names(const std::string& probe_path);

/// probe.val's loader: one ordered pass, the eval transform, this rank's share.
data::LoaderConfig val_loader_config(const config::RunConfig& cfg, const dist::DistEnv& env);

std::string join_blocks(const std::vector<int64_t>& blocks);

}  // namespace aim::probe::detail
