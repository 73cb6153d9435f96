#include <spdlog/fmt/fmt.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "aim/data/sample_count.h"
#include "aim/data/shard_list.h"
#include "aim/data/shard_stream.h"
#include "aim/model/model_stats.h"
#include "aim/train/trainer.h"

namespace aim::train {
namespace {

// 4915200000 -> "4.92 G"; below 10^4 the plain integer.
std::string readable_count(double v) {
  static const char* units[] = {"", "k", "M", "G", "T", "P", "E", "Z", "Y"};
  if (std::fabs(v) < 1e4) return fmt::format("{}", static_cast<int64_t>(std::llround(v)));
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 8) {
    v /= 1000;
    ++u;
  }
  return fmt::format("{:.3g} {}", v, units[u]);
}

// Start-up validation reads no remote shard: say so, per source, instead of implying a check.
std::string remote_shards_note(const config::RunConfig& cfg) {
  std::vector<const data::SourceConfig*> sources;
  for (const auto& s : cfg.data.sources) sources.push_back(&s);
  if (cfg.data.val) sources.push_back(&*cfg.data.val);
  std::string out;
  for (const auto* s : sources) {
    if (s->kind != "webdataset") continue;
    int64_t remote = 0, total = 0;
    try {
      for (const auto& shard : data::expand_shard_patterns(s->shards)) {
        ++total;
        remote += data::is_remote_shard(shard);
      }
    } catch (const std::exception&) {
      continue;  // validation reports the pattern
    }
    if (remote == 0) continue;
    out += fmt::format(
        "  data: source '{}': {} of {} shards are remote (pipe:/http): not checked before they are read; a failing one "
        "is re-opened up to {} times (data.shard_retries), then skipped and counted\n",
        s->name, remote, total, cfg.data.shard_retries);
  }
  return out;
}

}  // namespace

std::string human_duration(double s) {
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 120 * 60) return fmt::format("{:.0f} min", s / 60);
  if (s < 48 * 3600) return fmt::format("{:.1f} h", s / 3600);
  return fmt::format("{:.1f} days", s / 86400);
}

std::string slow_step_warning(const config::RunConfig& cfg, double peak) {
  if (!(peak > 0)) return "";
  const double step_s =
      static_cast<double>(cfg.train.batch_size) * model::count_flops(cfg.model).executed_training() / peak;
  if (step_s <= 180) return "";
  auto minutes = [](double s) { return human_duration(s); };
  return fmt::format(
      "one step of {} images needs at least {} here (at {:.3g} TFLOP/s, this machine's peak: real steps are slower), "
      "so the first log line comes after {} steps, at least {}. The defaults are the paper's cluster recipe; on this "
      "machine set a smaller train.batch_size (and micro_batch_size) and train.log_every, or train.peak_tflops if the "
      "measured peak is wrong",
      cfg.train.batch_size, minutes(step_s), peak / 1e12, cfg.train.log_every, minutes(step_s * cfg.train.log_every));
}

std::string batch_exceeds_data_warning(const config::RunConfig& cfg, const std::vector<int64_t>& known_sizes) {
  const int64_t batch = cfg.train.batch_size;
  int64_t total = 0;
  std::string per_source;
  const uint64_t max_member = static_cast<uint64_t>(cfg.data.max_member_mb) << 20;
  for (size_t i = 0; i < cfg.data.sources.size(); ++i) {
    const auto& s = cfg.data.sources[i];
    std::optional<int64_t> n;
    if (i < known_sizes.size() && known_sizes[i] >= 0)
      n = known_sizes[i];
    else
      n = data::count_samples_up_to(s, batch - total + 1, max_member);  // stops once the batch is covered
    if (!n) return "";
    total += *n;
    if (total > batch) return "";
    per_source += fmt::format("{}{} {}", per_source.empty() ? "" : ", ", s.name, *n);
  }
  if (total >= batch) return "";
  return fmt::format(
      "train.batch_size={} is larger than the training data ({} images: {}): one step covers more than an epoch, "
      "using each image {:.1f} times on average (differently augmented). Set train.batch_size (and "
      "train.micro_batch_size) well below {}, or add data",
      batch, total, per_source, total > 0 ? static_cast<double>(batch) / total : 0.0, total);
}

std::string describe_run(const config::RunConfig& cfg, int world_size) {
  const auto& m = cfg.model;
  const auto p = model::count_parameters(m);
  const auto f = model::count_flops(m);
  const int64_t accum = cfg.train.batch_size / std::max<int64_t>(1, cfg.train.micro_batch_size * world_size);
  const double images = static_cast<double>(cfg.train.steps) * cfg.train.batch_size;
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(3);
  o << "model " << m.preset << ": " << m.img_size << "px, patch " << m.patch_size << ", " << m.num_tokens()
    << " tokens, width " << m.width << ", depth " << m.depth << ", heads " << m.heads << " (head dim "
    << m.head_dim() << "), attention " << model::to_string(m.attention) << ", order " << m.order << "\n"
    << "  parameters: trunk " << p.trunk / 1e6 << " M, pre-training head " << p.pretrain_head / 1e6 << " M ("
    << m.head_blocks << " x " << m.head_width << "), total " << p.total() / 1e6 << " M\n"
    << "  FLOPs per image: forward " << f.forward() / 1e9 << " G (head " << 100.0 * f.head_forward / f.forward()
    << " %), training " << f.training() / 1e9 << " G (executed, head on loss tokens only: "
    << f.executed_training() / 1e9 << " G)\n"
    << "  batch: global " << cfg.train.batch_size << " = micro " << cfg.train.micro_batch_size << " x ranks "
    << world_size << " x accumulation " << accum << "\n"
    << "  steps " << cfg.train.steps << ", images seen " << readable_count(images) << ", training FLOPs "
    << fmt::format("{:.3g}", images * f.training()) << "\n";
  o << "  data:";
  for (const auto& s : cfg.data.sources) o << " " << s.name << " (" << s.kind << ", weight " << s.weight << ")";
  o << (cfg.data.val ? ", val " + cfg.data.val->name : std::string(", no validation")) << "\n";
  o << remote_shards_note(cfg);
  return o.str();
}

}  // namespace aim::train
