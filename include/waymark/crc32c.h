/*
 * crc32c.h - CRC32C (Castagnoli), the checksum of log frames and the Sensors
 * protocol's crc check. SSE4.2 where the CPU has it, tables otherwise.
 */
#ifndef WAYMARK_CRC32C_H
#define WAYMARK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Start with crc = 0; chains: crc(crc(0, a), b) == crc(0, a || b). */
uint32_t wm_crc32c(uint32_t crc, const void *data, size_t n);

#endif
