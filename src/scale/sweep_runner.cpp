#include "aim/scale/sweep_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <set>

#include "aim/config/run_config.h"
#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/train/run_status.h"
#include "aim/stopwatch.h"

namespace fs = std::filesystem;

namespace aim::scale {
namespace {

// Stop signals (SIGTERM, SIGUSR1, SIGINT) sent to aim-scale: each running aim-train gets the
// signal once (they run in their own process group, so a terminal's Ctrl-C reaches them only
// through us: twice would mean "exit at once"), checkpoints and exits; no new point starts.
constexpr int kMaxRunning = 4096;
volatile sig_atomic_t g_sweep_stop_signal = 0;
volatile sig_atomic_t g_num_running = 0;
pid_t g_running[kMaxRunning];

void forward_stop(int sig) {
  const int saved = errno;
  if (g_sweep_stop_signal == 0) g_sweep_stop_signal = sig;
  for (int i = 0; i < g_num_running; ++i)
    if (g_running[i] > 0) ::kill(g_running[i], sig);
  errno = saved;
}

// Publishes the running points' pids to the handler (count last, so it never reads a slot
// being written).
template <typename Map>
void track_running(const Map& running) {
  g_num_running = 0;
  int n = 0;
  for (const auto& entry : running)
    if (n < kMaxRunning) g_running[n++] = entry.first;
  g_num_running = n;
}

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string log_tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  for (std::string l; std::getline(in, l);) {
    tail.push_back(l);
    if (tail.size() > lines) tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail) out += l + "\n";
  return out;
}

pid_t start(const std::vector<std::string>& argv, const std::string& log_path) {
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) throw Error("cannot open '" + log_path + "' for the point's log");
  const pid_t pid = fork();
  if (pid < 0) {
    ::close(fd);
    throw Error("fork failed while starting a sweep point");
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    for (int sig : {SIGTERM, SIGUSR1, SIGINT}) ::signal(sig, SIG_DFL);
    dup2(fd, 1);
    dup2(fd, 2);
    ::close(fd);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    dprintf(2, "aim-scale: cannot execute %s\n", args[0]);
    _exit(127);
  }
  ::close(fd);
  return pid;
}

// Keys whose value cannot change a point's numbers: where files go, how often it logs and
// checkpoints, where and with how many threads/workers it runs, how it retries shards
// (run_identity's operational keys, plus the paths the sweep derives per point).
const std::set<std::string> kNotCompared = {
    "train.out_dir", "train.log_every", "train.ckpt_every", "train.keep_checkpoints", "train.max_nonfinite",
    "train.peak_tflops", "train.micro_batch_size", "train.device", "train.threads", "train.dist_timeout_s",
    "train.resume", "train.bucket_mb", "train.ckpt_async", "data.workers", "data.prefetch", "data.stream_lanes", "data.max_member_mb",
    "data.max_bad_streak", "data.shard_retries", "data.shard_retry_backoff_s", "data.shard_timeout_s",
    "probe.out_dir", "probe.weights", "probe.cache_gb"};

/// A YAML tree as dotted key -> scalar text ("data.sources.0.kind" -> "synthetic").
void flatten_to_map(const YAML::Node& n, const std::string& key, std::map<std::string, std::string>& out) {
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it)
      flatten_to_map(it->second, key.empty() ? it->first.as<std::string>() : key + "." + it->first.as<std::string>(), out);
  } else if (n.IsSequence()) {
    if (n.size() == 0) out[key] = "[]";
    for (size_t i = 0; i < n.size(); ++i) flatten_to_map(n[i], key + "." + std::to_string(i), out);
  } else {
    out[key] = n.IsNull() ? "null" : n.Scalar();
  }
}

std::map<std::string, std::string> compared_keys(const std::string& yaml) {
  std::map<std::string, std::string> out;
  flatten_to_map(YAML::Load(yaml), "", out);
  for (auto it = out.begin(); it != out.end();) it = kNotCompared.count(it->first) ? out.erase(it) : std::next(it);
  return out;
}

/// Moves a stale run out of the way: <out_dir>/replaced/<name>, .2, .3, ... if taken.
std::string move_aside(const SweepConfig& sweep, const SweepPoint& point) {
  const fs::path base = fs::path(sweep.out_dir) / "replaced" / point.name;
  fs::create_directories(base.parent_path());
  fs::path to = base;
  for (int k = 2; fs::exists(to); ++k) to = base.string() + "." + std::to_string(k);
  fs::rename(point.dir, to);
  return to.string();
}

}  // namespace

std::vector<std::string> point_config_differences(const SweepConfig& sweep, const SweepPoint& point) {
  const fs::path dir(point.dir), own = dir / "config.yaml";
  if (!fs::is_regular_file(own)) {
    if (fs::is_regular_file(dir / "trunk.safetensors"))
      return {"config.yaml: missing next to trunk.safetensors, so the run's config is unknown"};
    return {};
  }
  // Through the config reader first: a run made before a key existed reads as that key's
  // default, not as a difference; a file the reader refuses is compared as it is.
  std::string run_yaml;
  try {
    run_yaml = config::to_yaml(config::load_run_config(own.string()));
  } catch (const Error&) {
    std::ifstream in(own);
    run_yaml.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string wanted = config::to_yaml(config::load_run_config(sweep.base, point_overrides(sweep, point)));
  std::map<std::string, std::string> was;
  try {
    was = compared_keys(run_yaml);
  } catch (const YAML::Exception& e) {
    return {"config.yaml: unreadable (" + std::string(e.what()) + ")"};
  }
  const auto now = compared_keys(wanted);
  std::vector<std::string> out;
  for (const auto& [k, v] : now) {
    auto it = was.find(k);
    if (it == was.end()) out.push_back(k + ": (not in the run's config) -> " + v);
    else if (it->second != v) out.push_back(k + ": " + it->second + " -> " + v);
  }
  for (const auto& [k, v] : was)
    if (!now.count(k)) out.push_back(k + ": " + v + " -> (not in the sweep's config)");
  return out;
}

bool point_finished(const SweepConfig& sweep, const SweepPoint& point) {
  const fs::path dir(point.dir);
  if (!fs::is_regular_file(dir / "trunk.safetensors") || !fs::is_regular_file(dir / "config.yaml")) return false;
  if (sweep.probe && !fs::is_regular_file(dir / "probe" / "results.json")) return false;
  // Its last aim-train said it failed or was stopped (e.g. a re-run of the probe): not finished.
  if (const auto s = train::read_run_status(point.dir); s && (s->status == "failed" || s->status == "interrupted"))
    return false;
  return point_config_differences(sweep, point).empty();
}

std::vector<PointOutcome> run_sweep(const SweepConfig& sweep, const std::vector<SweepPoint>& points,
                                    const std::string& aim_train,
                                    void (*on_finish)(const PointOutcome&, size_t, size_t)) {
  std::vector<PointOutcome> outcomes(points.size());
  g_sweep_stop_signal = 0;
  struct sigaction sa {}, previous[3];
  sa.sa_handler = forward_stop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  const int stop_signals[3] = {SIGTERM, SIGUSR1, SIGINT};
  for (int k = 0; k < 3; ++k) ::sigaction(stop_signals[k], &sa, &previous[k]);
  std::deque<size_t> pending;
  for (size_t i = 0; i < points.size(); ++i) {
    outcomes[i].name = points[i].name;
    // A run of another config (a changed override, base or point value) is not this point's:
    // the new one starts from scratch, the old one is kept aside.
    const auto differences = point_config_differences(sweep, points[i]);
    if (!differences.empty()) {
      std::string what;
      for (const auto& d : differences) what += (what.empty() ? "" : "; ") + d;
      outcomes[i].replaced = move_aside(sweep, points[i]);
      spdlog::warn("point {}: its run was made with another config ({}); running it again, the old run is in {}",
                   points[i].name, what, outcomes[i].replaced);
    }
    if (point_finished(sweep, points[i])) {
      outcomes[i].status = "skipped";
    } else {
      pending.push_back(i);
    }
  }
  struct Running {
    size_t index;
    SteadyClock::time_point t0;
  };
  std::map<pid_t, Running> running;
  size_t finished = points.size() - pending.size();
  const std::vector<std::string> prefix = split_words(sweep.launcher);

  while (!pending.empty() || !running.empty()) {
    if (g_sweep_stop_signal != 0) pending.clear();  // stopping: the points not started stay unfinished
    while (!pending.empty() && static_cast<int>(running.size()) < sweep.jobs) {
      const size_t i = pending.front();
      pending.pop_front();
      fs::create_directories(points[i].dir);
      std::vector<std::string> argv = prefix;
      argv.push_back(aim_train);
      for (auto& a : train_arguments(sweep, points[i])) argv.push_back(a);
      const pid_t pid = start(argv, (fs::path(points[i].dir) / "log.txt").string());
      running[pid] = {i, SteadyClock::now()};
      track_running(running);
      // A signal that arrived while this point was starting did not reach it.
      if (g_sweep_stop_signal != 0) ::kill(pid, g_sweep_stop_signal);
    }
    if (running.empty()) break;
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      throw Error("waitpid failed while running the sweep");
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const size_t i = it->second.index;
    PointOutcome& o = outcomes[i];
    o.seconds = seconds_since(it->second.t0);
    running.erase(it);
    track_running(running);
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    const std::string log = (fs::path(points[i].dir) / "log.txt").string();
    // aim-train stopped by a signal checkpoints and exits 128 + signal: interrupted, to be
    // continued by re-running the sweep, not a failure.
    // One that got the signal before installing its handlers died of it: nothing was lost.
    const bool stopped = (WIFEXITED(status) && (o.exit_code == 128 + SIGTERM || o.exit_code == 128 + SIGUSR1 ||
                                                o.exit_code == 128 + SIGINT)) ||
                         (WIFSIGNALED(status) && WTERMSIG(status) == g_sweep_stop_signal);
    if (o.exit_code == 0 && point_finished(sweep, points[i])) {
      o.status = "done";
    } else if (stopped && g_sweep_stop_signal != 0) {
      o.status = "interrupted";
    } else {
      o.status = "failed";
      o.error = o.exit_code == 0 ? "aim-train exited 0 but left no trunk.safetensors / probe results\n" : "";
      o.error += log_tail(log, 15);
    }
    nlohmann::json j = {{"status", o.status}, {"exit_code", o.exit_code}, {"seconds", o.seconds}, {"log", log}};
    if (!o.error.empty()) j["error"] = o.error;
    io::write_file_atomic((fs::path(points[i].dir) / "point.json").string(), j.dump(2) + "\n");
    ++finished;
    if (on_finish) on_finish(o, finished, points.size());
  }
  g_num_running = 0;
  for (int k = 0; k < 3; ++k) ::sigaction(stop_signals[k], &previous[k], nullptr);
  return outcomes;
}

int sweep_stop_signal() { return g_sweep_stop_signal; }

}  // namespace aim::scale
