#pragma once
// Stop requests from the scheduler or the user, as signals: SIGTERM (SLURM preemption or
// time limit, torchrun's shutdown), SIGUSR1 (`#SBATCH --signal=USR1@120`: warning ahead of
// the limit) and SIGINT (Ctrl-C). The handler only records the signal; the training loop
// finishes the step in flight, agrees with the other ranks, checkpoints and exits.

namespace aim::runtime {

/// Installs the handlers (process-wide). A second SIGINT ends the process at once (exit
/// 130); repeated SIGTERM/SIGUSR1 are absorbed, so a scheduler's reminder cannot cut the
/// checkpoint being written (which is atomic in any case).
void install_stop_handlers();

/// Back to the default dispositions (a stop signal ends the process): for work with no
/// checkpoint to write, such as the probe that follows training.
void restore_default_stop_handlers();

/// The first stop signal received, 0 when none.
int stop_signal();

/// "SIGTERM", "SIGUSR1", "SIGINT", or "signal N".
const char* stop_signal_name(int sig);

/// Forgets a recorded signal (tests).
void clear_stop_request();

}  // namespace aim::runtime
