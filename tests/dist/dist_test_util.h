#pragma once
// In-process ranks for communicator tests: each rank is a thread with its own Gloo
// communicator over a real TCPStore on loopback.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aim/dist/communicator.h"

namespace aim::test {

inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline dist::DistEnv rank_env(int rank, int world, int port) {
  dist::DistEnv env;
  env.rank = rank;
  env.world_size = world;
  env.local_rank = rank;
  env.local_world_size = world;
  env.master_addr = "127.0.0.1";
  env.master_port = port;
  return env;
}

/// Runs fn(rank) on `world` threads and returns each rank's exception message ("" = none).
inline std::vector<std::string> run_ranks(int world, const std::function<void(int)>& fn) {
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
        if (errors[static_cast<size_t>(r)].empty()) errors[static_cast<size_t>(r)] = "(empty error)";
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

/// A Gloo communicator for rank `rank` of a loopback job on `port`.
inline std::unique_ptr<dist::Communicator> gloo_rank(int rank, int world, int port, int timeout_s = 30) {
  dist::ConnectOptions o;
  o.timeout = std::chrono::seconds(timeout_s);
  return dist::connect(rank_env(rank, world, port), o);
}

}  // namespace aim::test
