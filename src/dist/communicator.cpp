#include "aim/dist/communicator.h"

// Gloo's headers are not in every LibTorch (PyTorch's pip wheels omit them): without them
// CPU process groups are unavailable and say so, while CUDA (NCCL) training still builds.
#if __has_include(<gloo/algorithm.h>)
#define AIM_HAS_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#else
#define AIM_HAS_GLOO 0
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>  // Work, collective options
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>
#include <torch/version.h>

#include <csignal>
#include <cstdlib>
#include <sstream>
#include <type_traits>

#include "aim/dist/nccl_timeouts.h"
#include "aim/error.h"
#include "nccl_host_emulation.h"

namespace aim::dist {
namespace {

// c10::Error's what() carries a C++ stack trace; users get the message alone.
std::string message_of(const std::exception& e) {
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) return c10e->what_without_backtrace();
  return e.what();
}

std::string device_name(const torch::Device& d) {
  std::ostringstream o;
  o << d;
  return o.str();
}

class C10dWork : public PendingWork {
 public:
  // `timeout` 0 = wait as the backend does by default (NCCL: the watchdog enforces the
  // process group's timeout; an explicit timed wait would busy-poll the CPU on 2.x).
  // `emulated_stream_owner` set: HostSemantics::kNccl, wait() queues instead of blocking.
  C10dWork(c10::intrusive_ptr<c10d::Work> work, std::chrono::milliseconds timeout,
           const void* emulated_stream_owner = nullptr)
      : work_(std::move(work)), timeout_(timeout), owner_(emulated_stream_owner) {}
  void wait() override {
    if (!work_) return;  // already queued on the emulated stream
    if (owner_) {
      detail::enqueue_on_emulated_stream(owner_, std::move(work_), timeout_);
      return;
    }
    try {
      const bool ok = timeout_.count() > 0 ? work_->wait(timeout_) : work_->wait();
      if (!ok) throw Error("collective did not complete");
    } catch (const aim::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("collective failed (a rank died, or did not take part within train.dist_timeout_s): " +
                  message_of(e));
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::chrono::milliseconds timeout_;
  const void* owner_;
};

// All-gather into one flat tensor. The generic path hands c10d one view of `out` per rank
// (Gloo's allgather; it gathers into a flat buffer of its own and copies out); NCCL's
// _allgather_base writes straight into `out`, with no temporary the size of the result.
template <class Backend>
c10::intrusive_ptr<c10d::Work> gather_into(Backend& backend, torch::Tensor& out, torch::Tensor& in, int world) {
  std::vector<std::vector<at::Tensor>> outs(1);
  for (int r = 0; r < world; ++r) outs[0].push_back(out.slice(0, r * in.numel(), (r + 1) * in.numel()));
  std::vector<at::Tensor> ins{in};
  return backend.allgather(outs, ins);
}
#ifdef USE_C10D_NCCL
c10::intrusive_ptr<c10d::Work> gather_into(c10d::ProcessGroupNCCL& backend, torch::Tensor& out, torch::Tensor& in,
                                           int /*world*/) {
  return backend._allgather_base(out, in);
}
#endif

// Reduce-scatter of equal parts: c10d's _reduce_scatter_base where the backend has it (NCCL
// in every LibTorch; Gloo from 2.3), else (Gloo 1.13, whose reduce_scatter only throws)
// nothing, and the communicator all-reduces instead.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
constexpr bool kGlooReduceScatter = true;
#else
constexpr bool kGlooReduceScatter = false;
#endif

template <class Backend>
constexpr bool native_reduce_scatter_of() {
#ifdef USE_C10D_NCCL
  if constexpr (std::is_same_v<Backend, c10d::ProcessGroupNCCL>) return true;
#endif
  return kGlooReduceScatter;
}

// wait() of the fallback: the all-reduce, then this rank's part into `out` (a tensor op,
// so under the NCCL-semantics emulation it runs after the queued all-reduce).
class AllReduceScatterWork : public PendingWork {
 public:
  AllReduceScatterWork(std::unique_ptr<PendingWork> all_reduce, torch::Tensor out, torch::Tensor part)
      : all_reduce_(std::move(all_reduce)), out_(std::move(out)), part_(std::move(part)) {}
  void wait() override {
    if (!all_reduce_) return;
    all_reduce_->wait();
    all_reduce_.reset();
    out_.copy_(part_);
  }

 private:
  std::unique_ptr<PendingWork> all_reduce_;
  torch::Tensor out_, part_;
};

// One implementation for Gloo and NCCL: their collective signatures are identical in
// LibTorch 1.13 (ProcessGroup subclasses) and 2.x (Backend subclasses).
template <class Backend>
class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<Backend> backend, int rank, int world,
                   torch::Device device, std::chrono::milliseconds wait_timeout, bool emulate_nccl_host = false)
      : store_(std::move(store)), backend_(std::move(backend)), rank_(rank), world_(world), device_(device),
        wait_timeout_(wait_timeout), emulate_(emulate_nccl_host) {
    // On the thread that will run the training loop, before any backward pass (whose hooks
    // launch and wait for collectives) captures its thread-local state.
    if (emulate_) detail::watch_tensor_ops_on_this_thread();
  }
  ~C10dCommunicator() override {
    if (emulate_) detail::forget_emulated_stream(this);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  torch::Device device() const override { return device_; }

  std::unique_ptr<PendingWork> all_reduce_sum(torch::Tensor& t) override {
    require_on_device(t, "all_reduce");
    std::vector<at::Tensor> v{t};
    return work(guard([&] { return backend_->allreduce(v); }));
  }

  void broadcast(torch::Tensor& t, int root) override {
    require_on_device(t, "broadcast");
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    work(guard([&] { return backend_->broadcast(v, opts); }))->wait();
  }

  std::unique_ptr<PendingWork> reduce_sum(torch::Tensor& t, int root) override {
    require_on_device(t, "reduce");
    std::vector<at::Tensor> v{t};
    c10d::ReduceOptions opts;
    opts.rootRank = root;
    return work(guard([&] { return backend_->reduce(v, opts); }));
  }

  bool native_reduce_scatter() const override { return native_reduce_scatter_of<Backend>(); }

  std::unique_ptr<PendingWork> reduce_scatter_sum(torch::Tensor& out, torch::Tensor& in) override {
    require_on_device(in, "reduce_scatter");
    require_on_device(out, "reduce_scatter");
    if (in.numel() != out.numel() * world_ || out.scalar_type() != in.scalar_type())
      throw Error("reduce_scatter: the input must hold world_size x the output's elements, of the same dtype");
    if constexpr (native_reduce_scatter_of<Backend>()) {
      c10d::ReduceScatterOptions opts;
      return work(guard([&] { return backend_->_reduce_scatter_base(out, in, opts); }));
    } else {
      auto part = in.narrow(0, rank_ * out.numel(), out.numel());
      return std::make_unique<AllReduceScatterWork>(all_reduce_sum(in), out, part);
    }
  }

  void all_gather(torch::Tensor& out, torch::Tensor& in) override {
    require_on_device(in, "all_gather");
    require_on_device(out, "all_gather");
    if (out.numel() != in.numel() * world_ || out.scalar_type() != in.scalar_type())
      throw Error("all_gather: the output must hold world_size x the input's elements, of the same dtype");
    work(guard([&] { return gather_into(*backend_, out, in, world_); }))->wait();
  }

  void synchronize_for_host_read() override {
    if (emulate_) detail::synchronize_emulated_stream();
  }

 private:
  std::unique_ptr<PendingWork> work(c10::intrusive_ptr<c10d::Work> w) {
    return std::make_unique<C10dWork>(std::move(w), wait_timeout_, emulate_ ? this : nullptr);
  }

  template <class F>
  c10::intrusive_ptr<c10d::Work> guard(F&& f) {
    // A collective queued earlier that failed is reported before the next one starts.
    if (emulate_) detail::throw_if_emulated_stream_failed();
    try {
      return f();
    } catch (const std::exception& e) {
      throw Error("starting a collective failed: " + message_of(e));
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Backend> backend_;
  int rank_, world_;
  torch::Device device_;
  std::chrono::milliseconds wait_timeout_;
  bool emulate_;
};

bool agent_serves_store() {
  const char* v = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  return v && std::string(v) == "True";
}

// A peer that dies while this rank writes to its socket (Gloo's pairs, the TCPStore) makes the
// write fail with EPIPE, and by default the kernel also sends SIGPIPE, which kills the rank
// (exit 141) before c10d can turn the failure into the collective's error. Python, where
// torch.distributed usually runs, ignores SIGPIPE from the start; a C++ rank must do the same.
// A handler someone installed is left alone.
void ignore_sigpipe_like_python() {
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
}

c10::intrusive_ptr<c10d::Store> rendezvous(const DistEnv& env, std::chrono::milliseconds timeout) {
  const bool agent = agent_serves_store();
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(env.master_port);
    // torchrun's agent already listens on MASTER_PORT: serving it again fails with
    // "Address already in use". Otherwise rank 0 serves and waits for every rank.
    opts.isServer = !agent && env.rank == 0;
    opts.numWorkers = env.world_size;
    opts.waitWorkers = !agent;
    opts.timeout = timeout;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    // LibTorch >= 2.4 defaults to the libuv store backend, which distribution builds (e.g.
    // Debian 13's 2.6) leave out; the classic backend exists everywhere.
    opts.useLibUV = false;
#endif
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    if (!agent) return store;
    // The agent's store outlives worker restarts: keys live under the attempt, as in
    // torch.distributed.rendezvous._create_c10d_store.
    const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
    return c10::make_intrusive<c10d::PrefixStore>(std::string("/worker/attempt_") + (attempt && *attempt ? attempt : "0"),
                                                 store);
  } catch (const std::exception& e) {
    throw Error("rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) + " failed (rank " +
                std::to_string(env.rank) + "/" + std::to_string(env.world_size) +
                (agent ? ", as a client of torchrun's store" : env.rank == 0 ? ", serving the store" : ", as a client") +
                "): " + message_of(e));
  }
}

#if AIM_HAS_GLOO
// GLOO_SOCKET_IFNAME=eth0[,eth1] picks the interfaces, as in PyTorch; otherwise loopback
// for a local job and the interface the hostname resolves to for a multi-node one.
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices(const DistEnv& env) {
  std::vector<std::shared_ptr<::gloo::transport::Device>> out;
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    std::stringstream names(ifname);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name.empty()) continue;
      try {
        out.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
      } catch (const std::exception& e) {
        throw Error("GLOO_SOCKET_IFNAME: cannot use network interface '" + name + "': " + message_of(e));
      }
    }
    if (out.empty()) throw Error(std::string("GLOO_SOCKET_IFNAME='") + ifname + "' names no interface");
    return out;
  }
  const bool loopback = env.master_addr.rfind("127.", 0) == 0 || env.master_addr == "localhost";
  out.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                         : c10d::ProcessGroupGloo::createDefaultDevice());
  return out;
}
#endif

}  // namespace

void Communicator::require_on_device(const torch::Tensor& t, const char* op) const {
  const auto want = device();
  if (!t.defined()) throw Error(std::string(op) + ": undefined tensor");
  if (t.device() != want)
    throw Error(std::string(op) + ": tensor on " + device_name(t.device()) + ", but this communicator's collectives run on " +
                device_name(want) + (want.is_cuda() ? " (NCCL takes only CUDA tensors on the rank's own GPU)" : "") +
                "; move host values with the *_host helpers");
  if (t.is_sparse() || !t.is_contiguous())
    throw Error(std::string(op) + ": tensor must be dense and contiguous (as NCCL requires)");
}

HostSemantics host_semantics_from_environment() {
  const char* v = std::getenv("AIM_COMM_HOST_SEMANTICS");
  if (!v || !*v || std::string(v) == "backend") return HostSemantics::kBackend;
  if (std::string(v) == "nccl") return HostSemantics::kNccl;
  throw Error(std::string("AIM_COMM_HOST_SEMANTICS='") + v + "': expected 'nccl' or 'backend'");
}

void Communicator::barrier() {
  // Under NCCL, waiting for a collective only orders this rank's stream, and the host moves
  // on at once: an all-reduce + wait() orders no file operation across ranks. Reading the
  // result back to the host does — a device-to-host copy behind the all-reduce cannot finish
  // before every rank has launched it. (c10d's own NCCL barrier synchronizes its stream for
  // the same reason; ours runs on this communicator's device rather than one guessed from
  // the rank.)
  all_reduce_sum_host({0.0});
}

std::vector<double> Communicator::all_reduce_sum_host(const std::vector<double>& values) {
  auto t = torch::tensor(values, torch::kFloat64).to(device());
  all_reduce_sum_now(t);
  synchronize_for_host_read();
  t = t.cpu();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

std::vector<int64_t> Communicator::broadcast_host(const std::vector<int64_t>& values, int root) {
  auto t = torch::tensor(values, torch::kInt64).to(device());
  broadcast(t, root);
  synchronize_for_host_read();
  t = t.cpu();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

std::vector<int64_t> Communicator::all_gather_host(int64_t value) {
  auto t = torch::zeros({world_size()}, torch::kInt64);
  t[rank()] = value;
  t = t.to(device());
  all_reduce_sum_now(t);
  synchronize_for_host_read();
  t = t.cpu();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

void Communicator::check_same_on_all_ranks(const std::string& value, const std::string& what) {
  // Fixed-size digest of the string, compared with rank 0's broadcast copy.
  const auto h = static_cast<int64_t>(std::hash<std::string>{}(value) & 0x7fffffffffffLL);
  const int64_t root = broadcast_host({h}, 0).at(0);
  const auto differs = all_gather_host(root != h ? 1 : 0);
  std::ostringstream msg;
  bool any = false;
  for (int r = 0; r < world_size(); ++r)
    if (differs[static_cast<size_t>(r)]) {
      msg << (any ? " " : "") << r;
      any = true;
    }
  if (any) throw Error(what + " differs from rank 0's on rank(s): " + msg.str());
}

std::unique_ptr<Communicator> connect(const DistEnv& env, const ConnectOptions& options) {
  if (env.world_size < 1) throw Error("dist::connect needs world_size >= 1");
  ignore_sigpipe_like_python();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(options.timeout);
  const bool nccl = options.device.is_cuda() && !options.declared_device_only;
  if (nccl) {
#ifdef USE_C10D_NCCL
    // Before the process group reads them: without async error handling a dead rank
    // hangs NCCL collectives forever (see nccl_timeouts.h).
    enable_nccl_timeouts();
    auto store = rendezvous(env, ms);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = ms;
    try {
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, opts);
      return std::make_unique<C10dCommunicator<c10d::ProcessGroupNCCL>>(store, pg, env.rank, env.world_size,
                                                                        options.device, std::chrono::milliseconds(0));
    } catch (const std::exception& e) {
      throw Error("creating the NCCL process group failed: " + message_of(e));
    }
#else
    throw Error("this LibTorch has no NCCL (ProcessGroupNCCL); build against a CUDA LibTorch");
#endif
  }
#if AIM_HAS_GLOO
  auto opts = c10d::ProcessGroupGloo::Options::create(ms);
  opts->devices = gloo_devices(env);
  opts->threads = 2;
  auto store = rendezvous(env, ms);
  try {
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
    return std::make_unique<C10dCommunicator<c10d::ProcessGroupGloo>>(
        store, pg, env.rank, env.world_size, options.device, ms, options.host_semantics == HostSemantics::kNccl);
  } catch (const std::exception& e) {
    throw Error("creating the Gloo process group failed (did all " + std::to_string(env.world_size) +
                " ranks start and reach " + env.master_addr + ":" + std::to_string(env.master_port) +
                " within train.dist_timeout_s?): " + message_of(e));
  }
#else
  throw Error("this build has no Gloo (its headers were missing at build time): CPU ranks cannot form a "
              "process group; rebuild with gloo's headers on the include path, or train on CUDA (NCCL)");
#endif
}

}  // namespace aim::dist
