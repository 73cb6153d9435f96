// Two "nodes" on one machine: two network namespaces joined by a veth pair, each with its own
// address, two aim-train ranks per node started with torchrun's variables (MASTER_ADDR =
// node 0's address). (a) The 4-rank two-node run follows the 4-rank single-node run's
// losses; (b) killing every process of node 1 ends node 0's ranks with a clear error within
// train.dist_timeout_s. Traffic stays inside the namespaces the test creates. Needs root (as
// in CI); elsewhere it skips, and under CI=true / scripts/test.sh a skip is a failure.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "test_util.h"

namespace fs = std::filesystem;
using namespace aim;
using NodeClock = std::chrono::steady_clock;

namespace {

bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

// Two namespaces, n0 (10.77.<k>.1) and n1 (10.77.<k>.2), joined by a veth pair; removed (with
// every process left in them) when the object dies.
class TwoNodes {
 public:
  TwoNodes() {
    const unsigned k = std::random_device{}() % 200 + 20;
    tag_ = std::to_string(::getpid() % 100000) + "x" + std::to_string(k);
    subnet_ = "10.77." + std::to_string(k) + ".";
    ns_ = {"aimn0-" + tag_, "aimn1-" + tag_};
    veth_ = {"av0" + tag_, "av1" + tag_};  // interface names: at most 15 characters
    ok_ = sh("ip netns add " + ns_[0]) && sh("ip netns add " + ns_[1]) &&
          sh("ip link add " + veth_[0] + " type veth peer name " + veth_[1]);
    for (int n = 0; ok_ && n < 2; ++n)
      ok_ = sh("ip link set " + veth_[n] + " netns " + ns_[n]) &&
            sh("ip -n " + ns_[n] + " addr add " + address(n) + "/24 dev " + veth_[n]) &&
            sh("ip -n " + ns_[n] + " link set " + veth_[n] + " up") && sh("ip -n " + ns_[n] + " link set lo up");
  }
  ~TwoNodes() {
    for (const auto& ns : ns_) {
      sh("ip netns pids " + ns + " | xargs -r kill -9");
      sh("ip netns del " + ns);
    }
  }
  bool ok() const { return ok_; }
  // Every process in the node's namespace, as when the machine goes down.
  void kill_node(int node) const { sh("ip netns pids " + ns_[node] + " | xargs -r kill -9"); }
  std::string address(int node) const { return subnet_ + std::to_string(node + 1); }

  // Starts global rank `node * 2 + local` inside node's namespace; output to `log`.
  pid_t start_rank(int node, int local, int port, const std::vector<std::string>& args, const std::string& log) const {
    std::vector<std::string> argv = {"/usr/sbin/ip", "netns", "exec", ns_[node], "env",
                                     "RANK=" + std::to_string(node * 2 + local), "WORLD_SIZE=4",
                                     "LOCAL_RANK=" + std::to_string(local), "LOCAL_WORLD_SIZE=2",
                                     "MASTER_ADDR=" + address(0), "MASTER_PORT=" + std::to_string(port),
                                     "GLOO_SOCKET_IFNAME=" + veth_[node], test::kTrainBin};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_t pid = fork();
    if (pid == 0) {
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      freopen(log.c_str(), "w", stdout);
      freopen(log.c_str(), "a", stderr);
      execv(a[0], a.data());
      _exit(127);
    }
    return pid;
  }

 private:
  std::string tag_, subnet_;
  std::vector<std::string> ns_, veth_;
  bool ok_ = false;
};

std::map<int64_t, double> node_losses(const std::string& out_dir) { return test::metric_by_step(out_dir); }
using test::slurp;

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

const std::vector<std::string> kRun = {"--config", test::kTinyYaml, "train.steps=10", "train.log_every=1", "train.val_every=5",
                                       "train.batch_size=16", "train.micro_batch_size=4", "train.dist_timeout_s=20"};

}  // namespace

TEST(TwoNodes, FourRanksOnTwoNodesMatchOneNode) {
  AIM_REQUIRE_DEPENDENCY(::geteuid() == 0, "root (network namespaces)");
  TwoNodes nodes;
  ASSERT_TRUE(nodes.ok()) << "could not create the namespaces and the veth pair";
  test::TempDir dir;
  auto one = std::vector<std::string>{test::kTrainBin, "--nproc-per-node", "4"};
  one.insert(one.end(), kRun.begin(), kRun.end());
  one.push_back("train.out_dir=" + dir.file("one"));
  std::string cmd;
  for (const auto& a : one) cmd += "'" + a + "' ";
  const std::string out = test::capture(cmd);
  ASSERT_NE(out.find("[exit 0]"), std::string::npos) << out;

  auto args = kRun;
  args.push_back("train.out_dir=" + dir.file("two"));
  std::vector<pid_t> pids;
  for (int node = 0; node < 2; ++node)
    for (int local = 0; local < 2; ++local)
      pids.push_back(nodes.start_rank(node, local, 29531, args, dir.file("rank" + std::to_string(node * 2 + local))));
  for (size_t r = 0; r < pids.size(); ++r) {
    int status = 0;
    ::waitpid(pids[r], &status, 0);
    EXPECT_EQ(exit_code(status), 0) << "rank " << r << ":\n" << slurp(dir.file("rank" + std::to_string(r)));
  }
  auto a = node_losses(dir.file("one")), b = node_losses(dir.file("two"));
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  for (auto& [step, loss] : a) EXPECT_NEAR(loss, b[step], 1e-6 * std::abs(loss)) << "step " << step;
}

TEST(TwoNodes, LosingNodeOneEndsNodeZerosRanksWithinTheTimeout) {
  AIM_REQUIRE_DEPENDENCY(::geteuid() == 0, "root (network namespaces)");
  TwoNodes nodes;
  ASSERT_TRUE(nodes.ok());
  test::TempDir dir;
  std::vector<std::string> args = {"--config", test::kTinyYaml, "train.steps=100000", "train.log_every=1", "train.val_every=0",
                                    "train.ckpt_every=0", "train.batch_size=16", "train.micro_batch_size=4",
                                    "train.dist_timeout_s=5", "train.out_dir=" + dir.file("run")};
  std::vector<pid_t> pids;
  for (int node = 0; node < 2; ++node)
    for (int local = 0; local < 2; ++local)
      pids.push_back(nodes.start_rank(node, local, 29532, args, dir.file("rank" + std::to_string(node * 2 + local))));
  const auto deadline = NodeClock::now() + std::chrono::seconds(120);
  while (node_losses(dir.file("run")).size() < 3 && NodeClock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GE(node_losses(dir.file("run")).size(), 3u) << slurp(dir.file("rank0"));
  // The node goes away: every process of namespace 1 (its ranks, and `ip netns exec`).
  const auto t0 = NodeClock::now();
  nodes.kill_node(1);
  for (int r : {0, 1}) {
    int status = 0;
    bool ended = false;
    while (!ended && NodeClock::now() - t0 < std::chrono::seconds(60)) {
      ended = ::waitpid(pids[r], &status, WNOHANG) == pids[r];
      if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const double s = std::chrono::duration<double>(NodeClock::now() - t0).count();
    const std::string log = slurp(dir.file("rank" + std::to_string(r)));
    ASSERT_TRUE(ended) << "rank " << r << " still runs 60 s after node 1 died\n" << log;
    EXPECT_EQ(exit_code(status), 2) << log;
    EXPECT_LT(s, 5 + 10.0) << log;
    EXPECT_NE(log.find("aim-train: error: step "), std::string::npos) << log;
    EXPECT_NE(log.find("collective failed"), std::string::npos) << log;
  }
  for (int r : {2, 3}) ::waitpid(pids[r], nullptr, 0);
}
