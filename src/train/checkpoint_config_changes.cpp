// What resuming with a changed config does: the lines a resumed run logs (and a refused
// resume quotes) for every key that differs from the checkpoint's stored config.
#include <string>
#include <vector>

#include "aim/config/run_config.h"
#include "aim/train/checkpoint.h"

namespace aim::train {

namespace {

// What changing one key means for a run continued from a checkpoint.
std::string effect_of(const std::string& key) {
  auto starts = [&](const char* p) { return key.rfind(p, 0) == 0; };
  if (key == "train.steps")
    return "the warmup + cosine schedule is laid out over train.steps: from the resumed step on the learning rate "
           "follows the schedule of the new total, not the one the checkpoint was trained with";
  if (key == "train.batch_size") return "each step sees a different number of images; the lr schedule is per step";
  if (key == "train.seed") return "data order, augmentation and prefix lengths change from the resumed step on";
  if (key == "train.precision") return "the numerics of every later step change";
  if (starts("optim.")) return "the optimizer uses the new value from the resumed step on";
  if (starts("model.")) return "a different architecture: the weights load only if every shape still matches";
  if (starts("data.sources") || starts("data.augment"))
    return "the data changes: the saved loader position belongs to the old sources";
  return "";
}

}  // namespace

std::vector<std::string> describe_config_changes(const std::string& before_yaml, const std::string& after_yaml,
                                                 bool training_only) {
  if (before_yaml.empty()) return {"(the checkpoint predates stored configs: which keys differ is unknown)"};
  std::vector<std::string> lines;
  for (const auto& c : config::config_changes(before_yaml, after_yaml)) {
    if (training_only && !config::affects_training(c.key)) continue;
    std::string line = c.key + " " + c.before + " -> " + c.after;
    const std::string effect = effect_of(c.key);
    if (!effect.empty()) line += " (" + effect + ")";
    lines.push_back(line);
  }
  return lines;
}

}  // namespace aim::train
