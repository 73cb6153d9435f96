#pragma once
// A tiny HTTP/1.1 file server on 127.0.0.1 (an ephemeral port) for the remote-shard tests:
// serves the files of one directory, counts requests per path, and can misbehave on purpose:
// cut the first N responses of a path after half of the body (a connection reset mid-shard,
// as curl sees it: "transfer closed with ... bytes remaining"), answer a path with an error
// status, or drip a path's body a few bytes at a time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace aim::data::testing {

class HttpTestServer {
 public:
  explicit HttpTestServer(std::string root) : root_(std::move(root)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }
  ~HttpTestServer() {
    stop_ = true;
    accept_thread_.join();
    for (auto& t : handlers_) t.join();
    ::close(fd_);
  }
  std::string url(const std::string& rel) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + rel;
  }
  /// The first n responses for `/rel` stop after half of the body.
  void cut_first(const std::string& rel, int n) {
    std::lock_guard<std::mutex> lk(m_);
    cut_["/" + rel] = n;
  }
  /// Every response for `/rel` has this status (500, 403, ...) and a short text body.
  void fail_with(const std::string& rel, int status) {
    std::lock_guard<std::mutex> lk(m_);
    status_["/" + rel] = status;
  }
  /// `/rel` is sent `bytes` at a time, one piece every `every_s` seconds (bounded: it stops
  /// when the server is destroyed or the client goes away).
  void drip(const std::string& rel, size_t bytes, double every_s) {
    std::lock_guard<std::mutex> lk(m_);
    drip_["/" + rel] = {bytes, every_s};
  }
  int hits(const std::string& rel) {
    std::lock_guard<std::mutex> lk(m_);
    return hits_["/" + rel];
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::lock_guard<std::mutex> lk(m_);
      handlers_.emplace_back([this, c] { handle(c); });
    }
  }
  void send_all(int c, const char* p, size_t n) {
    while (n > 0) {
      ssize_t k = ::send(c, p, n, MSG_NOSIGNAL);
      if (k <= 0) return;
      p += k;
      n -= static_cast<size_t>(k);
    }
  }
  void handle(int c) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t k = ::recv(c, buf, sizeof buf, 0);
      if (k <= 0) break;
      req.append(buf, static_cast<size_t>(k));
    }
    std::istringstream line(req);
    std::string method, path;
    line >> method >> path;
    bool cut = false;
    int status = 0;
    std::pair<size_t, double> drip{0, 0.0};
    {
      std::lock_guard<std::mutex> lk(m_);
      ++hits_[path];
      if (cut_[path] > 0) {
        --cut_[path];
        cut = true;
      }
      if (status_.count(path)) status = status_[path];
      if (drip_.count(path)) drip = drip_[path];
    }
    std::ifstream f(root_ + path, std::ios::binary);
    if (status != 0) {
      const std::string r = "HTTP/1.1 " + std::to_string(status) + " Test Error\r\nContent-Length: 5\r\n" +
                            "Connection: close\r\n\r\nerror";
      send_all(c, r.data(), r.size());
    } else if (method != "GET" || path.find("..") != std::string::npos || !f) {
      const std::string r = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found";
      send_all(c, r.data(), r.size());
    } else {
      std::string body((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\nContent-Type: application/x-tar\r\nConnection: close\r\n\r\n";
      send_all(c, head.data(), head.size());
      const size_t n = cut ? body.size() / 2 : body.size();
      if (drip.first == 0) {
        send_all(c, body.data(), n);
      } else {
        for (size_t at = 0; at < n && !stop_; at += drip.first) {
          if (::send(c, body.data() + at, std::min(drip.first, n - at), MSG_NOSIGNAL) <= 0) break;
          std::this_thread::sleep_for(std::chrono::duration<double>(drip.second));
        }
      }
    }
    ::shutdown(c, SHUT_RDWR);
    ::close(c);
  }

  std::string root_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::mutex m_;
  std::vector<std::thread> handlers_;
  std::map<std::string, int> cut_, hits_, status_;
  std::map<std::string, std::pair<size_t, double>> drip_;
};

}  // namespace aim::data::testing
