#include "aim/runtime/stop_request.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>

namespace aim::runtime {
namespace {

volatile sig_atomic_t g_stop = 0;

void on_stop_signal(int sig) {
  if (g_stop == SIGINT && sig == SIGINT) ::_exit(128 + SIGINT);  // the second Ctrl-C: now
  if (g_stop == 0) g_stop = sig;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads and waits in flight go on; the loop checks between steps
  for (int sig : {SIGTERM, SIGUSR1, SIGINT}) ::sigaction(sig, &sa, nullptr);
}

void restore_default_stop_handlers() {
  for (int sig : {SIGTERM, SIGUSR1, SIGINT}) ::signal(sig, SIG_DFL);
}

int stop_signal() { return g_stop; }

const char* stop_signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGINT: return "SIGINT";
    default: {
      static thread_local char buf[32];
      std::snprintf(buf, sizeof buf, "signal %d", sig);
      return buf;
    }
  }
}

void clear_stop_request() { g_stop = 0; }

}  // namespace aim::runtime
