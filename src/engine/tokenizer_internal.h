/* tokenizer_internal.h — the tokenizer's tables, shared by tokenizer.c (loading, encoding) and
 * tokenizer_decode.c (pieces, streaming decoding, the chat template). Not for other users: they
 * go through tokenizer.h. */
#ifndef HAT_TOKENIZER_INTERNAL_H
#define HAT_TOKENIZER_INTERNAL_H

#include <stdint.h>

#include "engine/tokenizer.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

struct tokenizer {
    int n_vocab;
    char *text;                /* all token texts, as in the vocabulary (byte-encoded) */
    uint32_t *text_off, *text_len;
    char *piece;               /* decoded pieces (CONTROL tokens: their text) */
    uint32_t *piece_off;
    uint16_t *piece_len;
    uint8_t *type;             /* TT_* */
    uint8_t *eog;
    int32_t *tok_tab;          /* open addressing: text -> id, -1 empty */
    uint32_t tok_mask;
    char *merge;               /* merge strings "left right" */
    uint32_t *merge_off;
    uint16_t *merge_llen, *merge_rlen;
    int32_t *merge_tab;        /* open addressing: (left, right) -> rank, -1 empty */
    uint32_t merge_mask;
    int32_t *special;          /* ids matched as whole strings, longest first */
    int n_special;
    int digit_split;           /* "smollm" family: isolate \p{N} before the GPT-2 split */
    int32_t bos, eos;
    int add_bos;
    char *chat_template;       /* NULL when the file has none */
    char byte_enc[256][2];     /* GPT-2 byte -> code point U+0021..U+0143, as UTF-8 */
    uint8_t byte_enc_len[256];
    int16_t byte_dec[0x144];   /* code point -> byte, -1 if not a byte code point */
};

#endif
