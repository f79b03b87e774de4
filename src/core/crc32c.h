/*
 * crc32c.h — CRC-32C (Castagnoli), the checksum of every page the KV cache keeps on disk.
 *
 * Standard parameters (reflected polynomial 0x82F63B78, initial value and final xor
 * 0xFFFFFFFF), so rk_crc32c(0, "123456789", 9) == 0xE3069283 and a checksum can be extended:
 * rk_crc32c(rk_crc32c(0, a, n), b, m) equals the checksum of a followed by b.
 *
 * On x86-64 CPUs with SSE4.2 the crc32 instruction does the work (several GB/s, chosen at run
 * time); elsewhere a slicing-by-8 table. Both give identical results. Thread-safe, no
 * state.
 */
#ifndef RK_CORE_CRC32C_H
#define RK_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of data[0 .. n-1] continuing from crc (0 to start). data may be NULL when n = 0. */
uint32_t rk_crc32c(uint32_t crc, const void *data, size_t n);

/* The same checksum by the portable table path only (for tests comparing the two paths). */
uint32_t rk_crc32c_portable(uint32_t crc, const void *data, size_t n);

#endif
