// aim-train as a cluster starts it: through Debian's real torchrun (its agent owns the
// store), through the local launcher under signals as a scheduler or a user sends them,
// and with probe.at_end on two ranks, fresh and resumed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "aim/config/run_config.h"
#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/model/aim_pretrain.h"
#include "aim/train/checkpoint.h"
#include "aim/train/trainer.h"
#include "data/data_test_util.h"
#include "dist/dist_test_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;
using Clock = std::chrono::steady_clock;

namespace {

std::map<int64_t, double> losses(const std::string& out_dir) { return test::metric_by_step(out_dir); }
using test::slurp;

pid_t spawn_launcher(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    freopen(log.c_str(), "w", stdout);
    freopen(log.c_str(), "a", stderr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t c;
  while (in >> c) out.push_back(c);
  return out;
}

// Running, as opposed to gone or a zombie nobody reaped yet.
bool alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  const auto close = line.rfind(')');
  const char state = close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '?';
  return state != 'Z' && state != 'X';
}

template <class Pred>
bool wait_until(Pred pred, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

int wait_status_of(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const char* strsignal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "SIGINT"; }

const std::vector<std::string> kShortRun = {"train.steps=8", "train.log_every=1", "train.val_every=4",
                                            "train.batch_size=16", "train.micro_batch_size=4"};

// Debian's torchrun (PyTorch 1.13) starts the ranks; its agent serves the store on
// MASTER_PORT. Before aim-train joined it as a client, rank 0 died with "Address already in
// use". The run must follow the local launcher's trajectory.
TEST(Launch, TorchrunNoPythonMatchesTheLocalLauncher) {
  const std::string py = "/usr/bin/python3";
  AIM_REQUIRE_DEPENDENCY(test::capture(py + " -c 'import torch.distributed.run'").find("[exit 0]") != std::string::npos,
                         "torchrun (python3-torch)");
  test::TempDir dir;
  std::string overrides;
  for (const auto& o : kShortRun) overrides += " " + o;
  const std::string port = std::to_string(test::free_loopback_port());
  const std::string a = test::capture(test::kTrainBin + " --nproc-per-node 2 --config " + test::kTinyYaml + overrides +
                                      " train.out_dir=" + dir.file("local"));
  ASSERT_NE(a.find("[exit 0]"), std::string::npos) << a;
  // torchrun_compat.py also makes Debian 13's 2.6 torchrun (built without libuv) start.
  const std::string b = test::capture(py + " " + AIM_SOURCE_DIR +
                                      "/scripts/torchrun_compat.py --nproc_per_node 2 "
                                      "--master_addr 127.0.0.1 --master_port " + port + " --no_python " + test::kTrainBin +
                                      " --config " + test::kTinyYaml + overrides + " train.out_dir=" + dir.file("torchrun"));
  ASSERT_NE(b.find("[exit 0]"), std::string::npos) << b;
  auto la = losses(dir.file("local")), lb = losses(dir.file("torchrun"));
  ASSERT_EQ(la.size(), 8u);
  ASSERT_EQ(lb.size(), 8u);
  for (auto& [step, loss] : la) EXPECT_NEAR(loss, lb[step], 1e-6 * std::abs(loss)) << "step " << step;
}

// A rank that never arrives ends the others after train.dist_timeout_s, with an error
// naming the rendezvous, instead of the default 10 minutes (or forever).
TEST(Launch, AMissingRankEndsTheJobAfterDistTimeout) {
  test::TempDir dir;
  const auto t0 = Clock::now();
  const std::string port = std::to_string(test::free_loopback_port());
  const std::string out = test::capture("RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port +
                                        " " + test::kTrainBin + " --config " + test::kTinyYaml +
                                        " train.dist_timeout_s=3 train.out_dir=" + dir.file("run"));
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_NE(out.find("[exit 2]"), std::string::npos) << out;
  // LibTorch 1.13's store returns without the missing rank and Gloo times out ("did all 2
  // ranks start"); 2.x's store itself times out ("1/2 clients joined"). Both name the address.
  const bool gloo_said = out.find("creating the Gloo process group failed (did all 2 ranks start") != std::string::npos;
  const bool store_said = out.find("rendezvous at 127.0.0.1:" + port) != std::string::npos;
  EXPECT_TRUE(gloo_said || store_said) << out;
  EXPECT_NE(out.find("127.0.0.1:" + port), std::string::npos) << out;
  EXPECT_EQ(out.find("frame #"), std::string::npos) << "a C++ stack trace reached the user:\n" << out;
  EXPECT_LT(s, 60.0) << out;
}

std::vector<std::string> endless_run(const std::string& out) {
  return {test::kTrainBin, "--nproc-per-node", "2", "--config", test::kTinyYaml, "train.steps=100000", "train.ckpt_every=0",
          "train.val_every=0", "train.log_every=1", "train.out_dir=" + out};
}

// Starts the launcher and waits until both ranks are training.
pid_t start_training_launcher(const test::TempDir& dir, std::vector<pid_t>& ranks) {
  pid_t launcher = spawn_launcher(endless_run(dir.file("run")), dir.file("log.txt"));
  const bool started = wait_until(
      [&] {
        ranks = children_of(launcher);
        return ranks.size() == 2 && losses(dir.file("run")).size() >= 2;
      },
      120);
  EXPECT_TRUE(started) << slurp(dir.file("log.txt"));
  return launcher;
}

// Sends `sig` to a launcher whose two ranks are training, waits for the launcher to end,
// and expects both ranks gone within 30 s. Returns the launcher's wait status.
int signal_launcher_expect_ranks_gone(int sig) {
  test::TempDir dir;
  std::vector<pid_t> ranks;
  pid_t launcher = start_training_launcher(dir, ranks);
  EXPECT_EQ(ranks.size(), 2u);
  EXPECT_EQ(::kill(launcher, sig), 0);
  int status = 0;
  EXPECT_TRUE(wait_until([&] { return ::waitpid(launcher, &status, WNOHANG) == launcher; }, 60))
      << "the launcher did not exit after signal " << sig;
  for (pid_t r : ranks) EXPECT_TRUE(wait_until([&] { return !alive(r); }, 30)) << "rank pid " << r << " still runs";
  for (pid_t r : ranks) ::kill(r, SIGKILL);
  return status;
}

TEST(Launch, LocalLauncherForwardsSigtermToItsRanks) {
  const int status = signal_launcher_expect_ranks_gone(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status)) << "the launcher died of the signal instead of forwarding it";
  EXPECT_NE(status, 0);
}

// SIGKILL cannot be forwarded: the ranks' parent-death signal must end them.
TEST(Launch, SigkilledLauncherTakesItsRanksWithIt) { signal_launcher_expect_ranks_gone(SIGKILL); }

// A frozen rank (SIGSTOP: alive, silent) ends the job after train.dist_timeout_s: the other
// rank's error names the step and what it was waiting for, and the launcher then stops the
// frozen one too (SIGTERM + SIGCONT, SIGKILL after a grace) instead of waiting forever.
TEST(Launch, AFrozenRankEndsTheJobAfterDistTimeout) {
  test::TempDir dir;
  auto cmd = endless_run(dir.file("run"));
  cmd.push_back("train.dist_timeout_s=3");
  pid_t launcher = spawn_launcher(cmd, dir.file("log.txt"));
  std::vector<pid_t> ranks;
  ASSERT_TRUE(wait_until(
      [&] {
        ranks = children_of(launcher);
        return ranks.size() == 2 && losses(dir.file("run")).size() >= 3;
      },
      120))
      << slurp(dir.file("log.txt"));
  const pid_t rank1 = *std::max_element(ranks.begin(), ranks.end());
  const auto t0 = Clock::now();
  ASSERT_EQ(::kill(rank1, SIGSTOP), 0);
  const bool said = wait_until([&] { return slurp(dir.file("log.txt")).find("collective failed") != std::string::npos; }, 60);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  int status = 0;
  const bool ended = wait_until([&] { return ::waitpid(launcher, &status, WNOHANG) == launcher; }, 60);
  const std::string log = slurp(dir.file("log.txt"));
  ::kill(rank1, SIGKILL);
  ASSERT_TRUE(said) << log;
  EXPECT_LT(s, 3 + 10.0) << "rank 0 noticed only after " << s << " s\n" << log;
  // Where rank 0 notices depends on where rank 1 froze. Usually rank 0 waits for the gradient
  // or loss all-reduce; under the suite's NCCL host semantics a bucket all-reduce launched
  // during backward is waited for by the next tensor op, so a rank frozen before it joins
  // that bucket is noticed in backward (seen on a loaded machine). Each names its phase.
  const bool named = log.find("(waiting for the gradient all-reduce (every rank must reach it)): collective failed") !=
                         std::string::npos ||
                     log.find("(waiting for the loss all-reduce (every rank must reach it)): collective failed") !=
                         std::string::npos ||
                     log.find("(forward and backward): collective failed") != std::string::npos;
  EXPECT_TRUE(named) << "the error names what the rank was waiting for\n" << log;
  const auto at = log.find("aim-train: error: step ");
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_GT(std::stoll(log.substr(at + 23)), 3) << "the error names the step";
  ASSERT_TRUE(ended) << "the launcher waits for the frozen rank\n" << log;
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_FALSE(alive(rank1));
}

// Preemption (SLURM's SIGTERM or --signal=USR1@T, torchrun's SIGTERM, Ctrl-C): the step in
// flight finishes, every rank agrees, a checkpoint at that step is written, the process
// exits 128 + signal, and the same command continues with the losses of a run that was
// never interrupted. Periodic checkpoints are off, so the preemption's is the only one.
struct Preempted {
  int status = 0;
  int64_t step = -1;  // the step the stop message names
  std::string log;
};

enum class Target { kProcess, kLastRank };  // the process started, or only its last child

Preempted preempt(const std::vector<std::string>& cmd, const std::string& out, const std::string& log, int sig,
                  int times, Target target) {
  Preempted p;
  pid_t pid = spawn_launcher(cmd, log);
  EXPECT_TRUE(wait_until([&] { return losses(out).size() >= 5; }, 120)) << slurp(log);
  pid_t to = pid;
  if (target == Target::kLastRank) {
    auto ranks = children_of(pid);
    EXPECT_EQ(ranks.size(), 2u);
    to = *std::max_element(ranks.begin(), ranks.end());  // forked second: rank 1
  }
  for (int i = 0; i < times; ++i) {
    ::kill(to, sig);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(wait_until([&] { return ::waitpid(pid, &p.status, WNOHANG) == pid; }, 60)) << "no exit after the signal";
  p.log = slurp(log);
  const auto at = p.log.find("after step ");
  if (at != std::string::npos) p.step = std::stoll(p.log.substr(at + 11));
  return p;
}

std::vector<std::string> preemptible(const std::string& out, bool two_ranks) {
  std::vector<std::string> a = {test::kTrainBin, "--config", test::kTinyYaml, "train.steps=80", "train.ckpt_every=0", "train.val_every=0",
                                "train.log_every=1", "train.out_dir=" + out};
  if (two_ranks) a.insert(a.begin() + 1, {"--nproc-per-node", "2"});
  return a;
}

void expect_resumes_exactly(bool two_ranks, int sig, int times, Target target = Target::kProcess) {
  test::TempDir dir;
  const auto straight = preemptible(dir.file("straight"), two_ranks);
  ASSERT_EQ(wait_status_of(spawn_launcher(straight, dir.file("straight.log"))), 0) << slurp(dir.file("straight.log"));

  const std::string out = dir.file("run");
  auto p = preempt(preemptible(out, two_ranks), out, dir.file("stop.log"), sig, times, target);
  ASSERT_TRUE(WIFEXITED(p.status)) << p.log;
  EXPECT_EQ(WEXITSTATUS(p.status), 128 + sig) << p.log;
  // Rank 0 logs; when only rank 1 was signalled, rank 0 learns it from the step's reduction.
  const std::string why = target == Target::kLastRank ? "a peer rank's signal" : strsignal_name(sig);
  EXPECT_NE(p.log.find("stopping on " + why + " after step "), std::string::npos) << p.log;
  EXPECT_EQ(p.log.find("stopping the others"), std::string::npos) << "the launcher took a clean stop for a failure";
  ASSERT_GT(p.step, 0) << p.log;
  ASSERT_LT(p.step, 80) << "finished before the signal";
  char name[32];
  std::snprintf(name, sizeof name, "step_%09lld", static_cast<long long>(p.step));
  const std::string ckpt = out + "/checkpoints/" + name;
  ASSERT_TRUE(fs::exists(ckpt + "/manifest.json")) << p.log;
  for (int r = 0; r < (two_ranks ? 2 : 1); ++r)
    for (const char* f : {"/part_rank", "/loader_rank"})
      EXPECT_TRUE(fs::exists(ckpt + f + std::to_string(r) + (f[1] == 'p' ? ".safetensors" : ".json"))) << f << r;
  EXPECT_FALSE(fs::exists(out + "/trunk.safetensors"));

  ASSERT_EQ(wait_status_of(spawn_launcher(preemptible(out, two_ranks), dir.file("resume.log"))), 0) << slurp(dir.file("resume.log"));
  const auto resumed = slurp(dir.file("resume.log"));
  EXPECT_NE(resumed.find("(step " + std::to_string(p.step) + ")"), std::string::npos) << resumed;
  const auto a = losses(dir.file("straight")), b = losses(out);
  ASSERT_EQ(a.size(), 80u);
  ASSERT_EQ(b.size(), 80u);
  for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
  const auto ta = io::load_safetensors(dir.file("straight/trunk.safetensors")).metadata.at("parameter_digest");
  EXPECT_EQ(ta, io::load_safetensors(out + "/trunk.safetensors").metadata.at("parameter_digest"));
}

// SIGTERM twice (a scheduler's reminder while the checkpoint is written) on one process.
TEST(Preemption, SigtermTwiceCheckpointsTheStepAndResumesExactly) { expect_resumes_exactly(false, SIGTERM, 2); }

// SIGUSR1 to the local launcher (SLURM's --signal=USR1@120 reaches the batch step), passed
// on to both ranks, which stop after the same step.
TEST(Preemption, SigusrToTheLauncherStopsBothRanksAtTheSameStep) { expect_resumes_exactly(true, SIGUSR1, 1); }

// SIGTERM to rank 1 alone (a scheduler signalling tasks one by one, or a user's kill): rank
// 0 was not signalled, yet stops after the same step instead of waiting in a collective.
TEST(Preemption, OneSignalledRankStopsEveryRankAtTheSameStep) {
  expect_resumes_exactly(true, SIGTERM, 1, Target::kLastRank);
}

// Ctrl-C once: the same clean stop. Twice (from a user who means it): gone at once.
TEST(Preemption, CtrlCOnceStopsCleanlyTwiceAtOnce) {
  expect_resumes_exactly(false, SIGINT, 1);
  test::TempDir dir;
  const std::string out = dir.file("run");
  auto cmd = preemptible(out, false);
  cmd[3] = "train.steps=100000";
  cmd.insert(cmd.end(), {"train.batch_size=1024", "train.micro_batch_size=16"});  // steps of ~1 s
  pid_t pid = spawn_launcher(cmd, dir.file("log"));
  ASSERT_TRUE(wait_until([&] { return losses(out).size() >= 1; }, 120));
  // Both inside one step (apart, or the kernel merges them into one): the second must not
  // wait for the step, let alone the checkpoint.
  ::kill(pid, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_TRUE(wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 30));
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT);
  if (fs::exists(out + "/checkpoints"))
    for (const auto& e : fs::directory_iterator(out + "/checkpoints"))
      EXPECT_NE(e.path().filename().string().find(".partial"), std::string::npos)
          << "the second Ctrl-C waited for a checkpoint: " << e.path();
}

// srun + torchrun: SLURM signals the task, which is torchrun's agent. The agent handles
// SIGTERM (not SIGUSR1, whose default action kills it and orphans the ranks) by sending its
// workers SIGTERM and SIGKILLing them 30 s later: the ranks must finish the step, write the
// checkpoint within that grace, and the same command then resumes exactly.
TEST(Preemption, SigtermToTorchrunCheckpointsWithinItsGraceAndResumesExactly) {
  const std::string py = "/usr/bin/python3";
  AIM_REQUIRE_DEPENDENCY(test::capture(py + " -c 'import torch.distributed.run'").find("[exit 0]") != std::string::npos,
                         "torchrun (python3-torch)");
  test::TempDir dir;
  const auto straight = preemptible(dir.file("straight"), true);
  ASSERT_EQ(wait_status_of(spawn_launcher(straight, dir.file("straight.log"))), 0) << slurp(dir.file("straight.log"));

  const std::string out = dir.file("run");
  auto torchrun = [&] {
    std::vector<std::string> cmd = {py, std::string(AIM_SOURCE_DIR) + "/scripts/torchrun_compat.py",
                                    "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                                    std::to_string(test::free_loopback_port()), "--no_python"};
    for (const auto& a : preemptible(out, false)) cmd.push_back(a);
    return cmd;
  };
  const auto t0 = Clock::now();
  auto p = preempt(torchrun(), out, dir.file("stop.log"), SIGTERM, 1, Target::kProcess);
  const double stop_s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_NE(p.log.find("stopping on SIGTERM after step "), std::string::npos) << p.log;
  ASSERT_GT(p.step, 0) << p.log;
  ASSERT_LT(p.step, 80) << "finished before the signal";
  EXPECT_EQ(p.log.find("SIGKILL"), std::string::npos) << "torchrun had to kill a rank: " << p.log;
  EXPECT_LT(stop_s, 120);
  char name[32];
  std::snprintf(name, sizeof name, "step_%09lld", static_cast<long long>(p.step));
  for (int r = 0; r < 2; ++r)
    EXPECT_TRUE(fs::exists(out + "/checkpoints/" + name + "/loader_rank" + std::to_string(r) + ".json")) << p.log;

  ASSERT_EQ(wait_status_of(spawn_launcher(preemptible(out, true), dir.file("resume.log"))), 0) << slurp(dir.file("resume.log"));
  const auto a = losses(dir.file("straight")), b = losses(out);
  ASSERT_EQ(b.size(), 80u);
  for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;
}

// Ranks on nodes that do not share train.out_dir (or that see a stale copy) must stop
// rather than probe different weights.
TEST(Launch, TrunkExportIsConfirmedByEveryRank) {
  test::TempDir dir;
  auto cfg = config::load_run_config(test::kTinyYaml);
  torch::manual_seed(0);
  model::AimPretrainModel net(cfg.model);
  // A stale trunk from other weights where rank 1 looks.
  torch::manual_seed(1);
  model::AimPretrainModel other(cfg.model);
  fs::create_directories(dir.file("node1"));
  train::export_final_trunk(cfg, *other, 3, dir.file("node1/trunk.safetensors"), 0, nullptr);

  const int port = test::free_loopback_port();
  auto errors = test::run_ranks(2, [&](int r) {
    auto comm = test::gloo_rank(r, 2, port);
    fs::create_directories(dir.file("node" + std::to_string(r)));
    train::export_final_trunk(cfg, *net, 6, dir.file("node" + std::to_string(r) + "/trunk.safetensors"), r, comm.get());
  });
  for (int r = 0; r < 2; ++r)
    EXPECT_NE(errors[r].find("rank(s) 1 do not see the trunk rank 0 just wrote"), std::string::npos)
        << "rank " << r << ": " << errors[r];

  // On a shared directory every rank agrees.
  const int port2 = test::free_loopback_port();
  auto ok = test::run_ranks(2, [&](int r) {
    auto comm = test::gloo_rank(r, 2, port2);
    train::export_final_trunk(cfg, *net, 6, dir.file("node1/trunk.safetensors"), r, comm.get());
  });
  for (const auto& e : ok) EXPECT_EQ(e, "");
  auto meta = io::read_safetensors_metadata(dir.file("node1/trunk.safetensors"));
  EXPECT_EQ(meta.at("trained_steps"), "6");
  EXPECT_EQ(meta.at("parameter_digest"), train::parameter_digest(*net));
}

// probe.at_end on two ranks: a fresh run, then the same command again (it resumes from the
// final checkpoint) over a stale trunk planted in the run directory.
TEST(Launch, AtEndProbeOnTwoRanksFreshAndResumed) {
  test::TempDir dir;
  const std::string run = dir.file("run");
  const std::string cmd = test::kTrainBin + " --nproc-per-node 2 --config " + test::kTinyYaml + " train.out_dir=" + run +
                          " probe.at_end=true 'probe.train={kind: synthetic, size: 64, classes: 4}'"
                          " 'probe.val={kind: synthetic, size: 32, classes: 4}' probe.epochs=1 probe.batch_size=16";
  auto out = test::capture(cmd);
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  const auto digest = io::read_safetensors_metadata(run + "/trunk.safetensors").at("parameter_digest");

  auto cfg = config::load_run_config(test::kTinyYaml);
  torch::manual_seed(7);
  model::AimPretrainModel stale(cfg.model);
  train::export_final_trunk(cfg, *stale, 1, run + "/trunk.safetensors", 0, nullptr);

  out = test::capture(cmd);
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(io::read_safetensors_metadata(run + "/trunk.safetensors").at("parameter_digest"), digest)
      << "the stale trunk survived the resumed run";
  auto results = nlohmann::json::parse(std::ifstream(run + "/probe/results.json"));
  EXPECT_EQ(results["val_samples"].get<int64_t>(), 32);
}

}  // namespace

// The goal of issue 27 for one rank: a stop signal while the step waits for a stalled remote
// shard (here a command that sends a few samples, then nothing: the default 120 s timeout and
// three retries would hold the run ~8 minutes) drops that step, checkpoints the last finished
// one and exits 128 + SIGTERM within seconds; the shard's command goes with it.
TEST(Launch, SigtermWhileAStepWaitsForAStalledShardStopsAtOnce) {
  test::TempDir dir;
  fs::create_directories(dir.file("wds"));
  {
    data::TarWriter w(dir.file("wds/00000000.tar"));
    for (int k = 0; k < 20; ++k) {
      auto jpg = data::testing::jpeg(28, 28, k);
      w.add(std::to_string(1000 + k) + ".jpg", jpg.data(), jpg.size());
    }
  }
  // Its 20 samples (two steps of 8 and a half) without the end-of-archive blocks, then silence.
  const std::string tar = dir.file("wds/00000000.tar");
  const std::string stalled = "pipe:head -c $(( $(stat -c %s " + tar + ") - 1024 )) " + tar + "; sleep 47.3";
  const std::string out = dir.file("run"), log = dir.file("log.txt");
  pid_t pid = spawn_launcher({test::kTrainBin, "--config", test::kTinyYaml, "data.val=null", "train.steps=1000", "train.ckpt_every=0",
                     "train.log_every=1", "train.out_dir=" + out,
                     "data.sources=[{name: remote, kind: webdataset, shards: '" + stalled + "'}]"},
                    log);
  ASSERT_TRUE(wait_until([&] { return losses(out).size() >= 2; }, 120)) << slurp(log);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the third step is waiting for data by now
  const size_t steps_before = losses(out).size();
  const auto t0 = Clock::now();
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  const bool ended = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 60);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!ended) ::kill(pid, SIGKILL), ::waitpid(pid, &status, 0);
  const std::string text = slurp(log);
  ASSERT_TRUE(ended) << "no exit within 60 s of SIGTERM\n" << text;
  EXPECT_LT(s, 15.0) << text;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << text;
  EXPECT_NE(text.find("stopping on SIGTERM after step " + std::to_string(steps_before)), std::string::npos) << text;
  char step_dir[32];
  std::snprintf(step_dir, sizeof step_dir, "step_%09zu", steps_before);
  EXPECT_TRUE(fs::exists(out + "/checkpoints/" + step_dir)) << "the last finished step's checkpoint";
  EXPECT_TRUE(wait_until([] { return std::system("pgrep -f '^sleep 47.3$' > /dev/null") != 0; }, 5))
      << "the shard's command outlived the run";
  std::system("pkill -KILL -f '^sleep 47.3$'");
}

// Two ranks, one of them starved by a stalled shard while the other waits for it in the
// step's gradient all-reduce: SIGTERM to the launcher reaches both; the starved rank gives
// the step up and still takes part in the step's collectives (empty), the step's reduction
// tells the other, and both checkpoint the last finished step within seconds instead of
// waiting out data.shard_timeout_s.
TEST(Launch, SigtermWhileOneOfTwoRanksWaitsForAStalledShardStopsBoth) {
  test::TempDir dir;
  fs::create_directories(dir.file("wds"));
  for (int s = 0; s < 2; ++s) {
    data::TarWriter w(dir.file("wds/0000000" + std::to_string(s) + ".tar"));
    for (int k = 0; k < (s == 0 ? 400 : 12); ++k) {
      auto jpg = data::testing::jpeg(28, 28, 100 * s + k);
      w.add(std::to_string(1000 * (s + 1) + k) + ".jpg", jpg.data(), jpg.size());
    }
  }
  // Shard 0 plays on for hundreds of steps; shard 1's 12 samples come without the
  // end-of-archive blocks, then silence: its rank starves a few steps in.
  const std::string cut = dir.file("wds/00000001.tar");
  const std::string stalled = "pipe:head -c $(( $(stat -c %s " + cut + ") - 1024 )) " + cut + "; sleep 48.7";
  const std::string shards = dir.file("wds/00000000.tar") + "::" + stalled;
  const std::string out = dir.file("run"), log = dir.file("log.txt");
  pid_t pid = spawn_launcher({test::kTrainBin, "--nproc-per-node", "2", "--config", test::kTinyYaml, "data.val=null", "train.steps=1000",
                     "train.ckpt_every=0", "train.log_every=1", "data.stream_lanes=1", "train.out_dir=" + out,
                     "data.sources=[{name: remote, kind: webdataset, shards: '" + shards + "'}]"},
                    log);
  ASSERT_TRUE(wait_until([&] { return losses(out).size() >= 2; }, 120)) << slurp(log);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // one rank is starved by now, the other waits for it
  const size_t steps_before = losses(out).size();
  ASSERT_LT(steps_before, 20u) << "no rank starved: " << slurp(log);
  const auto t0 = Clock::now();
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  const bool ended = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 60);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!ended) ::kill(pid, SIGKILL), ::waitpid(pid, &status, 0);
  const std::string text = slurp(log);
  std::system("pkill -KILL -f '^sleep 48.7$'");
  ASSERT_TRUE(ended) << "no exit within 60 s of SIGTERM\n" << text;
  EXPECT_LT(s, 15.0) << text;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << text;
  EXPECT_NE(text.find("stopping on SIGTERM after step " + std::to_string(steps_before)), std::string::npos) << text;
  char step_dir[32];
  std::snprintf(step_dir, sizeof step_dir, "step_%09zu", steps_before);
  for (int r = 0; r < 2; ++r)
    EXPECT_TRUE(fs::exists(out + "/checkpoints/" + step_dir + "/loader_rank" + std::to_string(r) + ".json")) << text;
}
