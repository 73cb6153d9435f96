// aim-bench-collectives: the exchange of updated parameter slices after a sharded optimizer
// step, measured the two ways aim has done it: one broadcast per owning rank (the ZeRO-1 code
// before train.sharding=gradients) against all-gathers of bucket-sized chunks (what
// gather_updated_shards does now), on ranks that are threads with their own Gloo process
// group over loopback (CPU). Prints one JSON line per method: median seconds over the repeats.
//   aim-bench-collectives [--params 105000000] [--ranks 2] [--repeats 5] [--bucket-mb 25]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
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

}  // namespace

int main(int argc, char** argv) {
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
