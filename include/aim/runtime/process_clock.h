#pragma once
// How long this process has been running: what "time from process start to the first training
// step after a resume" is measured from (the kernel's start time, so library loading and
// everything before main() count too).

namespace aim::runtime {

/// Seconds since the kernel started this process (/proc/self/stat); -1 where unavailable.
double seconds_since_process_start();

}  // namespace aim::runtime
