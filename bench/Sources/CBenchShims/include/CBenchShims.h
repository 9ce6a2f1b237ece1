#ifndef HEATGATE_BENCH_SHIMS_H
#define HEATGATE_BENCH_SHIMS_H
#include <sys/prctl.h>

/// prctl(2) is variadic, which Swift cannot call: set this thread's timer slack (ns).
static inline int hgbench_set_timer_slack(unsigned long nanos) { return prctl(PR_SET_TIMERSLACK, nanos, 0, 0, 0); }

#endif
