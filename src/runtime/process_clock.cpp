#include "aim/runtime/process_clock.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace aim::runtime {

double seconds_since_process_start() {
  // Field 22 of /proc/self/stat: start time in clock ticks after boot; /proc/uptime: now.
  std::ifstream stat_file("/proc/self/stat"), uptime_file("/proc/uptime");
  std::string stat;
  double uptime = 0;
  if (!std::getline(stat_file, stat) || !(uptime_file >> uptime)) return -1;
  const auto close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return uptime - std::stod(field) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return -1;
}

}  // namespace aim::runtime
