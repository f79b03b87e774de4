/*
 * test-transport-pattern.h — the bytes the transport tests pass around a ring (test-transport
 * with threads, test-transport-mpi with MPI): uneven sizes, sometimes zero, and contents every
 * receiver can check.
 */
#ifndef RK_TEST_TRANSPORT_PATTERN_H
#define RK_TEST_TRANSPORT_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* Bytes rank r sends in round k. */
static inline size_t ring_bytes(int r, int k) {
    if ((r + k) % 5 == 0) return 0;
    return (size_t)((r * 37 + k * 113) % 700) + (k % 3 == 0 ? 70000 : 1);
}

/* Byte i of what rank r sends in round k. */
static inline uint8_t ring_byte(int r, int k, size_t i) {
    return (uint8_t)(r * 31 + k * 7 + i * 13 + (i >> 8));
}

#endif
