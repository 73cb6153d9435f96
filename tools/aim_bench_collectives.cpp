// aim-bench-collectives: the exchange of updated parameter slices after a sharded optimizer
// step, measured the two ways aim has done it: one broadcast per owning rank (the ZeRO-1 code
// before train.sharding=gradients) against all-gathers of bucket-sized chunks (what
// gather_updated_shards does now), on ranks that are threads with their own Gloo process
// group over loopback (CPU). Prints one JSON line per method: median seconds over the repeats.
//   aim-bench-collectives [--params 105000000] [--ranks 2] [--repeats 5] [--bucket-mb 25]
//
// --barrier-check (CUDA, one GPU): a world-size-1 NCCL group. A long chain of matmuls is
// queued, then the host waits for a collective the way aim's barrier once did (all-reduce +
// wait(): NCCL returns at once) and the way Communicator::barrier() does (a read-back):
// the latter must not return before the queued kernels finished. Prints one JSON line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "aim/dist/communicator.h"

using Clock = std::chrono::steady_clock;

namespace {

std::string arg(int argc, char** argv, const std::string& key, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == key) return argv[i + 1];
  return def;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Seconds from `f` being called until it returns, after `kernels` were queued (not waited for).
template <class F>
double host_seconds_after_queueing(const torch::Tensor& a, int kernels, F&& f) {
  auto x = a;
  for (int i = 0; i < kernels; ++i) x = torch::mm(x, a).div_(a.size(0));
  const auto t0 = Clock::now();
  f();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  torch::cuda::synchronize();
  return s;
}

int barrier_check() {
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "aim-bench-collectives --barrier-check needs a CUDA GPU\n");
    return 2;
  }
  aim::dist::DistEnv env;
  env.master_port = free_port();
  aim::dist::ConnectOptions opts;
  opts.device = torch::Device(torch::kCUDA, 0);
  auto comm = aim::dist::connect(env, opts);
  auto a = torch::randn({8192, 8192}, torch::TensorOptions().dtype(torch::kBFloat16).device(opts.device));
  const int kernels = 200;
  // The kernels alone, timed to their end.
  const auto t0 = Clock::now();
  auto x = a;
  for (int i = 0; i < kernels; ++i) x = torch::mm(x, a).div_(a.size(0));
  torch::cuda::synchronize();
  const double kernel_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const double wait_s = host_seconds_after_queueing(a, kernels, [&] {
    auto t = torch::zeros({1}, torch::TensorOptions().device(opts.device));
    comm->all_reduce_sum(t)->wait();
  });
  const double barrier_s = host_seconds_after_queueing(a, kernels, [&] { comm->barrier(); });
  const bool ok = barrier_s >= 0.8 * kernel_s;
  std::printf("{\"check\": \"barrier\", \"kernels_s\": %.4f, \"all_reduce_wait_s\": %.4f, \"barrier_s\": %.4f, "
              "\"barrier_waits_for_kernels\": %s}\n",
              kernel_s, wait_s, barrier_s, ok ? "true" : "false");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--barrier-check") return barrier_check();
  const int64_t n = std::stoll(arg(argc, argv, "--params", "105000000"));
  const int world = std::stoi(arg(argc, argv, "--ranks", "2"));
  const int repeats = std::stoi(arg(argc, argv, "--repeats", "5"));
  const int64_t chunk_cap = static_cast<int64_t>(std::stod(arg(argc, argv, "--bucket-mb", "25")) * 1024 * 1024 / 4);
  at::set_num_threads(1);
  const int port = free_port();
  std::vector<std::vector<double>> times(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      aim::dist::DistEnv env;
      env.rank = r;
      env.world_size = world;
      env.local_rank = r;
      env.local_world_size = world;
      env.master_addr = "127.0.0.1";
      env.master_port = port;
      auto comm = aim::dist::connect(env, aim::dist::ConnectOptions{});
      auto params = torch::zeros({n});  // the flattened parameters
      auto bound = [&](int q) { return n * q / world; };
      int64_t widest = 0;
      for (int q = 0; q < world; ++q) widest = std::max(widest, bound(q + 1) - bound(q));
      params.slice(0, bound(r), bound(r + 1)).fill_(float(r + 1));
      for (int rep = 0; rep < repeats; ++rep)
        for (int method = 0; method < 2; ++method) {
          comm->barrier();
          const auto t0 = Clock::now();
          if (method == 0) {  // one broadcast of each owner's slice, copied into place
            for (int q = 0; q < world; ++q) {
              auto buf = torch::empty({bound(q + 1) - bound(q)});
              if (q == r) buf.copy_(params.slice(0, bound(q), bound(q + 1)));
              comm->broadcast(buf, q);
              if (q != r) params.slice(0, bound(q), bound(q + 1)).copy_(buf);
            }
          } else {  // all-gathers of chunks of every slice, padded to the widest
            const int64_t c = std::min(widest, chunk_cap);
            auto in = torch::empty({c}), out = torch::empty({c * world});
            for (int64_t at = 0; at < widest; at += c) {
              const int64_t mine = std::min(bound(r + 1) - bound(r) - at, c);
              if (mine > 0) in.slice(0, 0, mine).copy_(params.slice(0, bound(r) + at, bound(r) + at + mine));
              comm->all_gather(out, in);
              for (int q = 0; q < world; ++q) {
                const int64_t len = std::min(bound(q + 1) - bound(q) - at, c);
                if (q != r && len > 0)
                  params.slice(0, bound(q) + at, bound(q) + at + len).copy_(out.slice(0, q * c, q * c + len));
              }
            }
          }
          comm->barrier();
          if (r == 0) times[method].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
        }
      for (int q = 0; q < world; ++q)
        if (params[bound(q)].item<float>() != float(q + 1)) std::fprintf(stderr, "rank %d: wrong slice %d\n", r, q);
    });
  for (auto& t : threads) t.join();
  const char* names[] = {"broadcast_per_owner", "chunked_all_gather"};
  for (int m = 0; m < 2; ++m) {
    auto v = times[m];
    std::sort(v.begin(), v.end());
    std::printf("{\"method\": \"%s\", \"params\": %lld, \"ranks\": %d, \"median_s\": %.4f, \"min_s\": %.4f}\n", names[m],
                static_cast<long long>(n), world, v[v.size() / 2], v.front());
  }
  return 0;
}
