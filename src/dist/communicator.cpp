#include "aim/dist/communicator.h"

// Gloo's headers are not in every LibTorch (PyTorch's pip wheels omit them): without them
// CPU process groups are unavailable and say so, while CUDA (NCCL) training still builds.
#if __has_include(<gloo/algorithm.h>)
#define AIM_HAS_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#else
#define AIM_HAS_GLOO 0
#endif
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>  // Work, collective options
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>
#include <torch/version.h>

#include <sstream>

#include "aim/error.h"

namespace aim::dist {
namespace {

class C10dWork : public PendingWork {
 public:
  C10dWork(c10::intrusive_ptr<c10d::Work> work, std::chrono::milliseconds timeout)
      : work_(std::move(work)), timeout_(timeout) {}
  void wait() override {
    try {
      if (!work_->wait(timeout_)) throw Error("collective did not complete");
    } catch (const aim::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(std::string("collective failed (a rank died or timed out?): ") + e.what());
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::chrono::milliseconds timeout_;
};

// One implementation for Gloo and NCCL: their collective signatures are identical in
// LibTorch 1.13 (ProcessGroup subclasses) and 2.x (Backend subclasses).
template <class Backend>
class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<Backend> backend, int rank, int world,
                   std::chrono::milliseconds timeout)
      : store_(std::move(store)), backend_(std::move(backend)), rank_(rank), world_(world), timeout_(timeout) {}

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  std::unique_ptr<PendingWork> all_reduce_sum(torch::Tensor& t) override {
    std::vector<at::Tensor> v{t};
    return std::make_unique<C10dWork>(guard([&] { return backend_->allreduce(v); }), timeout_);
  }

  void broadcast(torch::Tensor& t, int root) override {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    C10dWork(guard([&] { return backend_->broadcast(v, opts); }), timeout_).wait();
  }

  void barrier() override {
    C10dWork(guard([&] { return backend_->barrier(); }), timeout_).wait();
  }

 private:
  template <class F>
  c10::intrusive_ptr<c10d::Work> guard(F&& f) {
    try {
      return f();
    } catch (const std::exception& e) {
      throw Error(std::string("starting a collective failed: ") + e.what());
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Backend> backend_;
  int rank_, world_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

void Communicator::check_same_on_all_ranks(const std::string& value, const std::string& what) {
  // Fixed-size digest of the string, summed across ranks against rank 0's broadcast copy.
  const auto h = static_cast<int64_t>(std::hash<std::string>{}(value) & 0x7fffffffffffLL);
  auto mine = torch::tensor({h}, torch::kInt64);
  auto root = mine.clone();
  broadcast(root, 0);
  auto differs = torch::tensor({root.item<int64_t>() != h ? int64_t(1) << rank() : int64_t(0)}, torch::kInt64);
  all_reduce_sum_now(differs);
  const int64_t mask = differs.item<int64_t>();
  if (mask != 0) {
    std::ostringstream msg;
    msg << what << " differs from rank 0's on rank(s):";
    for (int r = 0; r < std::min(world_size(), 62); ++r)
      if (mask & (int64_t(1) << r)) msg << ' ' << r;
    throw Error(msg.str());
  }
}

std::unique_ptr<Communicator> connect(const DistEnv& env, bool cuda, std::chrono::seconds timeout) {
  if (env.world_size < 2) throw Error("dist::connect needs world_size > 1");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(env.master_port);
    opts.isServer = env.rank == 0;
    opts.numWorkers = env.world_size;
    opts.waitWorkers = true;
    opts.timeout = ms;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    // LibTorch >= 2.4 defaults to the libuv store backend, which distribution builds (e.g.
    // Debian 13's 2.6) leave out; the classic backend exists everywhere.
    opts.useLibUV = false;
#endif
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const std::exception& e) {
    throw Error("rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) + " failed (rank " +
                std::to_string(env.rank) + "/" + std::to_string(env.world_size) + "): " + e.what());
  }
  if (cuda) {
#ifdef USE_C10D_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = ms;
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, opts);
    return std::make_unique<C10dCommunicator<c10d::ProcessGroupNCCL>>(store, pg, env.rank, env.world_size, ms);
#else
    throw Error("this LibTorch has no NCCL (ProcessGroupNCCL); build against a CUDA LibTorch");
#endif
  }
#if AIM_HAS_GLOO
  auto opts = c10d::ProcessGroupGloo::Options::create(ms);
  const bool loopback = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
  opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  try {
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
    return std::make_unique<C10dCommunicator<c10d::ProcessGroupGloo>>(store, pg, env.rank, env.world_size, ms);
  } catch (const std::exception& e) {
    throw Error(std::string("creating the Gloo process group failed: ") + e.what());
  }
#else
  throw Error("this build has no Gloo (its headers were missing at build time): CPU ranks cannot form a "
              "process group; rebuild with gloo's headers on the include path, or train on CUDA (NCCL)");
#endif
}

}  // namespace aim::dist
