// Where a rank finds itself: torchrun and SLURM variables, the SLURM node list, and the
// per-rank CUDA device rule (pure, so checkable without a GPU).
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <set>

#include "aim/dist/dist_env.h"
#include "aim/dist/slurm_nodelist.h"
#include "aim/error.h"
#include "aim/runtime/device.h"

using namespace aim;

namespace {

// Sets variables for one test and clears every launch variable first.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, std::string>& vars) {
    for (const char* k : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                          "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE",
                          "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_JOB_ID", "SLURM_STEP_ID",
                          "SLURM_STEP_NODELIST"})
      ::unsetenv(k);
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
    keys_ = vars;
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : keys_) ::unsetenv(k.c_str());
  }

 private:
  std::map<std::string, std::string> keys_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SlurmNodelist, FirstHost) {
  EXPECT_EQ(dist::first_host_of_nodelist("node01"), "node01");
  EXPECT_EQ(dist::first_host_of_nodelist("gpu[007-010,12]"), "gpu007");
  EXPECT_EQ(dist::first_host_of_nodelist("n[01-04,07],gpu5"), "n01");
  EXPECT_EQ(dist::first_host_of_nodelist("a-b[3],c[1-2]"), "a-b3");
  EXPECT_EQ(dist::first_host_of_nodelist("rack[2-3]-node[10-11]"), "rack2-node10");
  EXPECT_EQ(dist::first_host_of_nodelist("host.example,host2"), "host.example");
  EXPECT_THROW(dist::first_host_of_nodelist("node[01-"), Error);
  EXPECT_THROW(dist::first_host_of_nodelist("node[a-b]"), Error);
  EXPECT_THROW(dist::first_host_of_nodelist(""), Error);
}

TEST(LaunchEnv, SlurmWithoutMasterAddrUsesTheFirstNodeAndAJobPort) {
  ScopedEnv env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                 {"SLURM_NTASKS_PER_NODE", "4(x2)"}, {"SLURM_JOB_NODELIST", "gpu[007-008]"},
                 {"SLURM_JOB_ID", "123456"}});
  auto e = dist::dist_env_from_environment();
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "gpu007");
  EXPECT_EQ(e.master_port, 10000 + 123456 % 20000);
  // Two jobs sharing a node get different ports.
  EXPECT_NE(dist::port_for_slurm_job(123456), dist::port_for_slurm_job(123457));
}

// A job step may run on part of the allocation: its rank 0 is the step's first node, and two
// steps of one job (two sruns side by side) must not meet at the same port.
TEST(LaunchEnv, SlurmJobStepsUseTheirOwnNodesAndPorts) {
  ScopedEnv env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_JOB_NODELIST", "gpu[001-004]"},
                 {"SLURM_STEP_NODELIST", "gpu[003-004]"}, {"SLURM_JOB_ID", "777"}, {"SLURM_STEP_ID", "1"}});
  auto e = dist::dist_env_from_environment();
  EXPECT_EQ(e.master_addr, "gpu003");
  const int step1 = e.master_port;
  ::setenv("SLURM_STEP_ID", "0", 1);
  const int step0 = dist::dist_env_from_environment().master_port;
  EXPECT_EQ(step0, 10000 + 777);
  EXPECT_NE(step0, step1);
  std::set<int> ports;
  for (int s = 0; s < 64; ++s) {
    const int p = dist::port_for_slurm_job(987654321, s);
    EXPECT_GE(p, 10000);
    EXPECT_LT(p, 30000);
    ports.insert(p);
  }
  EXPECT_EQ(ports.size(), 64u) << "two steps of one job share a port";
  ::setenv("SLURM_STEP_ID", "batch", 1);  // the batch script's own step: no number
  EXPECT_EQ(dist::dist_env_from_environment().master_port, 10000 + 777);
}

TEST(LaunchEnv, TorchrunVariablesMapOneToOne) {
  ScopedEnv env({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                 {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29511"}});
  auto e = dist::dist_env_from_environment();
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "10.0.0.7");
  EXPECT_EQ(e.master_port, 29511);
  EXPECT_TRUE(e.distributed());
}

// `srun torchrun ...` inside an allocation: SLURM's variables describe the one task per
// node that runs torchrun, torchrun's describe the worker. The worker's must win.
TEST(LaunchEnv, TorchrunInsideSlurmUsesTheWorkersVariables) {
  ScopedEnv env({{"RANK", "6"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "4"},
                 {"MASTER_ADDR", "gpu007"}, {"MASTER_PORT", "29400"}, {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"},
                 {"SLURM_LOCALID", "0"}, {"SLURM_JOB_NODELIST", "gpu[007-008]"}, {"SLURM_JOB_ID", "9"}});
  auto e = dist::dist_env_from_environment();
  EXPECT_EQ(e.rank, 6);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_port, 29400);
}

TEST(LaunchEnv, SlurmMasterVariablesWin) {
  ScopedEnv env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "gpu[007-008]"},
                 {"SLURM_JOB_ID", "77"}, {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "29555"}});
  auto e = dist::dist_env_from_environment();
  EXPECT_EQ(e.master_addr, "10.1.2.3");
  EXPECT_EQ(e.master_port, 29555);
}

TEST(LaunchEnv, SlurmWithoutAnyAddressFailsAtOnceSayingWhatToExport) {
  ScopedEnv env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
  const auto msg = error_of([] { dist::dist_env_from_environment(); });
  EXPECT_NE(msg.find("MASTER_ADDR"), std::string::npos) << msg;
  EXPECT_NE(msg.find("SLURM_JOB_NODELIST"), std::string::npos) << msg;
}

TEST(LaunchEnv, TorchrunStyleWithoutMasterAddrFails) {
  ScopedEnv env({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  EXPECT_NE(error_of([] { dist::dist_env_from_environment(); }).find("MASTER_ADDR is not set"), std::string::npos);
}

TEST(LaunchEnv, SingleProcessWithoutVariables) {
  ScopedEnv env({});
  auto e = dist::dist_env_from_environment();
  EXPECT_FALSE(e.distributed());
}

TEST(LaunchEnv, BadPortIsRefused) {
  ScopedEnv env({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "70000"}});
  EXPECT_NE(error_of([] { dist::dist_env_from_environment(); }).find("MASTER_PORT=70000"), std::string::npos);
}

TEST(CudaDevice, EachLocalRankGetsItsOwnGpu) {
  EXPECT_EQ(runtime::cuda_device_for_local_rank(0, 8, 8, nullptr), torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(runtime::cuda_device_for_local_rank(3, 8, 8, nullptr), torch::Device(torch::kCUDA, 3));
  const auto msg = error_of([] { runtime::cuda_device_for_local_rank(2, 2, 4, nullptr); });
  EXPECT_NE(msg.find("local rank 2 needs its own GPU, but this process sees 2"), std::string::npos) << msg;
  // SLURM --gpus-per-task=1 (or --gpu-bind): every task sees exactly its own GPU as device 0.
  for (int local = 0; local < 8; ++local)
    EXPECT_EQ(runtime::cuda_device_for_local_rank(local, 1, 8, "5"), torch::Device(torch::kCUDA, 0)) << local;
  // One GPU shown unbound to several local ranks: they would share it.
  const auto shared = error_of([] { runtime::cuda_device_for_local_rank(1, 1, 2, nullptr); });
  EXPECT_NE(shared.find("local rank 1 of 2 needs its own GPU"), std::string::npos) << shared;
  EXPECT_EQ(runtime::cuda_device_for_local_rank(0, 1, 2, nullptr), torch::Device(torch::kCUDA, 0));
  // On a machine without CUDA a CPU device never touches the CUDA guard.
  runtime::pin_current_device(torch::Device(torch::kCPU));
}

}  // namespace
