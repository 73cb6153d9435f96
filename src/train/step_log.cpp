#include "step_log.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cmath>
#include <sstream>

#include "aim/compat.h"
#include "aim/model/model_stats.h"
#include "aim/stopwatch.h"

namespace aim::train {
namespace {


double seconds_between(SteadyClock::time_point a, SteadyClock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<int64_t>(s);
  std::ostringstream o;
  if (t >= 3600) o << t / 3600 << "h" << (t % 3600) / 60 << "m";
  else if (t >= 60) o << t / 60 << "m" << t % 60 << "s";
  else o << t << "s";
  return o.str();
}

double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);
}

// On CUDA the caching allocator's peak (what the memory plan predicts for the device), on
// CPU the process's peak RSS. GiB, like ru_maxrss / 2^20.
double peak_mem_gb(const TrainingRun& run) {
  if (run.device.is_cuda()) {
    const double bytes = compat::cuda_peak_allocated_bytes(run.device.index());
    if (bytes >= 0) return bytes / (1024.0 * 1024.0 * 1024.0);
  }
  return peak_rss_gb();
}

}  // namespace

StepLog::StepLog(const TrainingRun& run, double peak_flops)
    : peak_(peak_flops), flops_per_image_(model::count_flops(run.cfg.model).executed_training()), start_step_(run.step),
      run_start_(SteadyClock::now()) {}

void StepLog::step_done(const TrainingRun& run, const StepResult& r) {
  const auto& tc = run.cfg.train;
  window_time_ += r.seconds;
  window_wait_ += r.data_wait;
  ++window_steps_;
  const int64_t step = run.step;
  if (step % tc.log_every != 0 && step != tc.steps) return;

  const double img_s = static_cast<double>(tc.batch_size * window_steps_) / window_time_;
  const double tflops = img_s * flops_per_image_ / 1e12;
  const double mfu = peak_ > 0 ? img_s * flops_per_image_ / peak_ : 0;
  nlohmann::json rec = {{"step", step}, {"loss", r.loss}, {"lr", r.lr}, {"grad_norm", r.grad_norm},
                        {"img_per_s", img_s}, {"tflops", tflops},
                        {"mfu", peak_ > 0 ? nlohmann::json(mfu) : nlohmann::json(nullptr)},
                        {"data_wait", window_wait_ / window_time_}, {"peak_mem_gb", peak_mem_gb(run)},
                        {"images_seen", step * tc.batch_size}, {"skipped_steps", run.skipped_total}};
  if (run.metrics) run.metrics->write(rec);
  if (run.is_rank0()) {
    const double eta = (tc.steps - step) * (seconds_between(run_start_, SteadyClock::now()) / static_cast<double>(step - start_step_));
    spdlog::info("step {}/{} | loss {:.4f} | lr {:.2e} | grad {:.3f} | {:.1f} img/s | mfu {} | data {:.0f}% | eta {}",
                 step, tc.steps, r.loss, r.lr, r.grad_norm, img_s,
                 peak_ > 0 ? fmt::format("{:.1f}%", 100 * mfu) : std::string("n/a"),
                 100 * window_wait_ / window_time_, format_duration(eta));
    // The mixture line matters with several sources; with one it only says something when
    // new bad samples were skipped since the last line.
    const int64_t bad = run.loader->bad_samples().total();
    if (run.cfg.data.sources.size() > 1 || bad != bad_logged_) spdlog::info("data: {}", run.loader->summary());
    bad_logged_ = bad;
  }
  window_time_ = window_wait_ = 0;
  window_steps_ = 0;
}

}  // namespace aim::train
