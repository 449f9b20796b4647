/* bytes.h — little-endian fields of the project's binary files (adapters, corpora), independent
 * of the host's byte order and alignment. */
#ifndef HAT_BYTES_H
#define HAT_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void put_f64(uint8_t *p, double v) { uint64_t u; memcpy(&u, &v, 8); put_u64(p, u); }
static inline void put_f32(uint8_t *p, float v) { uint32_t u; memcpy(&u, &v, 4); put_u32(p, u); }
static inline uint32_t get_u32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static inline uint64_t get_u64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }
static inline double get_f64(const uint8_t *p) { uint64_t u = get_u64(p); double v; memcpy(&v, &u, 8); return v; }
static inline float get_f32(const uint8_t *p) { uint32_t u = get_u32(p); float v; memcpy(&v, &u, 4); return v; }
/* n bytes of a NUL-padded text field into dst (dlen bytes, always NUL-terminated) */
static inline void get_str(char *dst, size_t dlen, const uint8_t *p, size_t n) {
    size_t k = 0;
    while (k < n && k + 1 < dlen && p[k]) { dst[k] = (char)p[k]; k++; }
    dst[k] = 0;
}

#endif
