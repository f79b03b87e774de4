/* clock.h — a monotonic clock for the timings ringkv reports (benchmarks, I/O stats). */
#ifndef RK_CORE_CLOCK_H
#define RK_CORE_CLOCK_H

/* Seconds on a monotonic clock (only differences mean anything). */
double rk_now_seconds(void);

#endif
