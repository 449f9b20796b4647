/* tokenizer_unicode.h — Unicode helpers of the tokenizer (private to tokenizer.c). */
#ifndef HAT_TOKENIZER_UNICODE_H
#define HAT_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum { C_L = 1, C_N = 2, C_WS = 4 };  /* \p{L}, \p{N}, \s */
/* class of a code point: C_L, C_N, C_WS or 0 */
int tok_cp_class(uint32_t cp);
/* One code point from s[*i..n). Mirrors llama.cpp: only lead/continuation bits are checked
 * (overlong forms and surrogates pass); a bad byte yields U+FFFD and consumes one byte. */
uint32_t tok_utf8_next(const unsigned char *s, size_t n, size_t *i);
/* writes cp as UTF-8 (1..4 bytes) to o; code points above U+10FFFF become U+FFFD */
int tok_utf8_put(uint32_t cp, unsigned char *o);

#endif
