/* crc32c.h — CRC-32C (Castagnoli), the checksum of wire messages, adapter files and corpora. */
#ifndef HAT_CRC32C_H
#define HAT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Hardware crc32 instructions where the CPU has SSE4.2, else a table; crc32c_ref is the bitwise
 * reference they are tested against. Chain calls by passing the previous result as crc (0 first). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t n);
uint32_t crc32c_ref(uint32_t crc, const void *buf, size_t n);

#endif
