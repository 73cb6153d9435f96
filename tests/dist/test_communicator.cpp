// The communicator's contract on CPU, with real Gloo process groups over loopback: the
// device rule NCCL enforces, host helpers, torchrun's agent-owned store, a rank that dies,
// and interface selection.
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>
#include <torch/version.h>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "aim/error.h"
#include "dist/dist_test_util.h"
#include "test_util.h"

using namespace aim;
using aim::test::gloo_rank;
using aim::test::run_ranks;

namespace {

// A communicator claiming a GPU, as NCCL's is: CPU tensors must be refused exactly as
// ProcessGroupNCCL refuses them, before anything is sent.
TEST(Communicator, RefusesTensorsOffItsDeviceLikeNccl) {
  const int port = test::free_loopback_port();
  auto errors = run_ranks(2, [&](int r) {
    dist::ConnectOptions o;
    o.device = torch::Device(torch::kCUDA, r);
    o.declared_device_only = true;
    o.timeout = std::chrono::seconds(30);
    auto comm = dist::connect(test::rank_env(r, 2, port), o);
    EXPECT_EQ(comm->device(), torch::Device(torch::kCUDA, r));
    auto host = torch::ones({3});
    try {
      comm->all_reduce_sum_now(host);
      ADD_FAILURE() << "all_reduce took a CPU tensor";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("NCCL takes only CUDA tensors"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tensor on cpu"), std::string::npos) << e.what();
    }
    EXPECT_THROW(comm->broadcast(host, 0), Error);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(Communicator, RefusesNonContiguousTensors) {
  const int port = test::free_loopback_port();
  auto errors = run_ranks(2, [&](int r) {
    auto comm = gloo_rank(r, 2, port);
    auto t = torch::ones({4, 4}).t();
    EXPECT_THROW(comm->all_reduce_sum_now(t), Error);
    auto ok = torch::ones({4});
    comm->all_reduce_sum_now(ok);
    EXPECT_EQ(ok[0].item<float>(), 2.0f);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

TEST(Communicator, HostHelpersAndRankAgreement) {
  const int port = test::free_loopback_port();
  auto errors = run_ranks(3, [&](int r) {
    auto comm = gloo_rank(r, 3, port);
    EXPECT_EQ(comm->all_reduce_sum_host({double(r), 1.0, 0.5}), (std::vector<double>{3.0, 3.0, 1.5}));
    EXPECT_EQ(comm->broadcast_host({100 + r, -r}, 1), (std::vector<int64_t>{101, -1}));
    EXPECT_EQ(comm->all_gather_host(10 * r), (std::vector<int64_t>{0, 10, 20}));
    comm->check_same_on_all_ranks("same", "a value");
    try {
      comm->check_same_on_all_ranks(r == 2 ? "other" : "same", "the resolved config");
      ADD_FAILURE() << "a differing rank went unnoticed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the resolved config differs from rank 0's on rank(s): 2"), std::string::npos)
          << e.what();
    }
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
}

// torchrun's agent serves the TCPStore on MASTER_PORT and says so; the ranks must join it
// as clients (rank 0 serving the same port again fails with "Address already in use").
TEST(Communicator, JoinsTheStoreTorchrunsAgentServes) {
  const int port = test::free_loopback_port();
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = true;
  so.waitWorkers = false;
  so.timeout = std::chrono::seconds(30);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  so.useLibUV = false;
#endif
  auto agent = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);

  // Without the agent flag rank 0 tries to serve the agent's port: this must fail, which is
  // what every torchrun launch did before the client path existed.
  ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
  try {
    gloo_rank(0, 2, port, 5);
    ADD_FAILURE() << "serving an occupied port succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("serving the store"), std::string::npos) << e.what();
  }

  ::setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
  ::setenv("TORCHELASTIC_RESTART_COUNT", "3", 1);
  auto errors = run_ranks(2, [&](int r) {
    auto comm = gloo_rank(r, 2, port);
    auto t = torch::full({2}, double(r + 1), torch::kFloat64);
    comm->all_reduce_sum_now(t);
    EXPECT_EQ(t[1].item<double>(), 3.0);
  });
  ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
  ::unsetenv("TORCHELASTIC_RESTART_COUNT");
  for (const auto& e : errors) EXPECT_EQ(e, "");
  // The ranks' keys (Gloo publishes rank 0's address of device 0 as "0/0") live under the
  // attempt's prefix, as with PyTorch's env:// init.
  EXPECT_GT(agent->getNumKeys(), 0);
  bool prefixed = false;
  try {
    agent->wait({"/worker/attempt_3/0/0"}, std::chrono::milliseconds(2000));
    prefixed = true;
  } catch (const std::exception&) {
  }
  EXPECT_TRUE(prefixed) << "no key under /worker/attempt_3/";
}

// A peer that dies mid-send must surface as the collective's error, not as SIGPIPE killing this
// rank (exit 141, seen in TwoNodes.LosingNodeOneEndsNodeZerosRanksWithinTheTimeout): connecting
// ignores SIGPIPE as Python does, so a write to a dead peer returns EPIPE instead.
TEST(Communicator, ConnectingIgnoresSigpipeLikePython) {
  ::signal(SIGPIPE, SIG_DFL);  // the default, whatever a test before this one in the process did
  auto comm = gloo_rank(0, 1, test::free_loopback_port());
  struct sigaction now {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_IGN);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  const char byte = 'x';
  EXPECT_EQ(::write(fds[1], &byte, 1), -1);  // without the change: the process dies here
  EXPECT_EQ(errno, EPIPE);
  ::close(fds[1]);
}

// A rank that disappears must end its peers' collectives with an error within the
// configured timeout, not hang them.
TEST(Communicator, ADeadRankEndsCollectivesWithAnError) {
  const int port = test::free_loopback_port();
  const auto t0 = std::chrono::steady_clock::now();
  auto errors = run_ranks(2, [&](int r) {
    auto comm = gloo_rank(r, 2, port, /*timeout_s=*/5);
    // One collective together first: the group is then complete on both ranks (otherwise, on a
    // busy machine, rank 1 could leave while rank 0 is still connecting, and the error would
    // be the group's creation, not the collective this test is about).
    auto warm = torch::ones({1});
    comm->all_reduce_sum_now(warm);
    if (r == 1) return;  // leaves: its process group is destroyed without taking part
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto t = torch::ones({4});
    comm->all_reduce_sum_now(t);
    // Gloo reports the failure in wait(); NCCL (and the suite's emulation of it) when the
    // host next reads a result back or meets the other ranks.
    comm->barrier();
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(errors[0].find("collective failed"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1], "");
  EXPECT_LT(s, 30.0);
}

// What a collective's wait() promises the host under NCCL: nothing. Rank 1 writes a file
// and then joins a collective; rank 0 waits for the same collective and looks for the file.
// With Gloo's blocking wait the file is always there, which is how a CPU suite hid that an
// all-reduce + wait() orders no file operation on a GPU cluster. With NCCL's host semantics
// the old barrier (a collective waited for) lets rank 0 run ahead; barrier() does not.
std::vector<bool> file_seen_after(dist::HostSemantics semantics, bool real_barrier) {
  const int port = test::free_loopback_port();
  test::TempDir dir;
  std::vector<bool> seen(2, true);
  auto errors = run_ranks(2, [&](int r) {
    dist::ConnectOptions o;
    o.timeout = std::chrono::seconds(30);
    o.host_semantics = semantics;
    auto comm = dist::connect(test::rank_env(r, 2, port), o);
    comm->barrier();  // both connected
    if (r == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::ofstream(dir.file("from_rank1")) << "written before the barrier";
    }
    if (real_barrier) {
      comm->barrier();
    } else {  // the barrier aim had: an all-reduce of a dummy, waited for
      auto t = torch::zeros({1});
      comm->all_reduce_sum(t)->wait();
    }
    seen[static_cast<size_t>(r)] = std::filesystem::exists(dir.file("from_rank1"));
    comm->barrier();
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  return seen;
}

TEST(Communicator, UnderNcclHostSemanticsACollectiveOrdersNoFileButBarrierDoes) {
  EXPECT_TRUE(file_seen_after(dist::HostSemantics::kBackend, /*real_barrier=*/false)[0])
      << "Gloo's wait() blocks the host: the old barrier looked correct on CPU";
  EXPECT_FALSE(file_seen_after(dist::HostSemantics::kNccl, /*real_barrier=*/false)[0])
      << "under NCCL's semantics a waited-for collective must not hold rank 0's host";
  EXPECT_TRUE(file_seen_after(dist::HostSemantics::kNccl, /*real_barrier=*/true)[0]);
  EXPECT_TRUE(file_seen_after(dist::HostSemantics::kBackend, /*real_barrier=*/true)[0]);
}

// The emulated device is the host thread: wait() returns before the late rank arrives, and
// the next tensor operation on the result waits for it (a kernel queued behind the
// collective), so results are right without a host synchronisation.
TEST(Communicator, UnderNcclHostSemanticsTensorOpsSeeTheResult) {
  const int port = test::free_loopback_port();
  std::vector<double> wait_s(2), value(2);
  auto errors = run_ranks(2, [&](int r) {
    dist::ConnectOptions o;
    o.timeout = std::chrono::seconds(30);
    o.host_semantics = dist::HostSemantics::kNccl;
    auto comm = dist::connect(test::rank_env(r, 2, port), o);
    comm->barrier();
    if (r == 1) std::this_thread::sleep_for(std::chrono::milliseconds(400));
    auto t = torch::full({3}, double(r + 1), torch::kFloat64);
    const auto t0 = std::chrono::steady_clock::now();
    comm->all_reduce_sum(t)->wait();
    wait_s[static_cast<size_t>(r)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto doubled = t * 2;  // queued behind the all-reduce
    value[static_cast<size_t>(r)] = doubled[2].item<double>();
    // broadcast and all_gather queue the same way
    auto b = torch::full({2}, double(10 * r + 5), torch::kFloat64);
    comm->broadcast(b, 1);
    auto in = torch::full({2}, double(r), torch::kFloat64), out = torch::zeros({4}, torch::kFloat64);
    comm->all_gather(out, in);
    EXPECT_EQ(b.sum().item<double>(), 30.0);
    EXPECT_EQ(out[2].item<double>() + out[1].item<double>(), 1.0);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_LT(wait_s[0], 0.2) << "wait() held the host until the late rank arrived";
  EXPECT_EQ(value[0], 6.0);
  EXPECT_EQ(value[1], 6.0);
}

TEST(Communicator, HostSemanticsComeFromTheEnvironment) {
  const char* before = std::getenv("AIM_COMM_HOST_SEMANTICS");
  const std::string saved = before ? before : "";
  ::setenv("AIM_COMM_HOST_SEMANTICS", "nccl", 1);
  EXPECT_EQ(dist::host_semantics_from_environment(), dist::HostSemantics::kNccl);
  ::setenv("AIM_COMM_HOST_SEMANTICS", "backend", 1);
  EXPECT_EQ(dist::host_semantics_from_environment(), dist::HostSemantics::kBackend);
  ::setenv("AIM_COMM_HOST_SEMANTICS", "gloo", 1);
  EXPECT_THROW(dist::host_semantics_from_environment(), Error);
  if (before) ::setenv("AIM_COMM_HOST_SEMANTICS", saved.c_str(), 1);
  else ::unsetenv("AIM_COMM_HOST_SEMANTICS");
}

// The whole suite runs under NCCL's host semantics (tests/test_environment.cpp).
TEST(Communicator, TheSuiteRunsUnderNcclHostSemantics) {
  EXPECT_EQ(dist::ConnectOptions().host_semantics, dist::HostSemantics::kNccl);
}

TEST(Communicator, GlooSocketIfnameSelectsInterfaces) {
  {
    ::setenv("GLOO_SOCKET_IFNAME", "lo", 1);
    const int port = test::free_loopback_port();
    auto errors = run_ranks(2, [&](int r) {
      auto comm = gloo_rank(r, 2, port);
      auto t = torch::ones({1});
      comm->all_reduce_sum_now(t);
      EXPECT_EQ(t.item<float>(), 2.0f);
    });
    for (const auto& e : errors) EXPECT_EQ(e, "");
  }
  ::setenv("GLOO_SOCKET_IFNAME", "aimnosuchif0", 1);
  try {
    gloo_rank(0, 2, test::free_loopback_port(), 5);
    ADD_FAILURE() << "an unknown interface was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GLOO_SOCKET_IFNAME: cannot use network interface 'aimnosuchif0'"),
              std::string::npos)
        << e.what();
  }
  ::unsetenv("GLOO_SOCKET_IFNAME");
}

}  // namespace
