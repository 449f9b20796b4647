/* crc32c.c — see crc32c.h. */
#include "core/crc32c.h"

#include <string.h>
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u   /* reflected Castagnoli polynomial */

uint32_t crc32c_ref(uint32_t crc, const void *buf, size_t n) {
    const uint8_t *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (CRC32C_POLY & (0u - (crc & 1u)));
    }
    return ~crc;
}

#if !defined(__SSE4_2__)
static uint32_t crc_table[256];
static void crc_table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        crc_table[i] = c;
    }
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t n) {
    const uint8_t *p = buf;
    crc = ~crc;
#if defined(__SSE4_2__)
    uint64_t c = crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    crc = (uint32_t)c;
    for (; n; n--, p++) crc = _mm_crc32_u8(crc, *p);
#else
    if (!crc_table[1]) crc_table_init();
    for (; n; n--, p++) crc = (crc >> 8) ^ crc_table[(crc ^ *p) & 0xffu];
#endif
    return ~crc;
}
