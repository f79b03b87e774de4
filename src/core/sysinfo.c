/* sysinfo.c — process-level facts the tools report (peak memory). */
#include <sys/resource.h>

#include "ringkv.h"

size_t rk_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
}
