/* tokenizer.h — byte-level BPE tokenizer for GGUF "gpt2"-model vocabularies (SmolLM2).
 *
 * Encodings reproduce llama.cpp's (vendored in llama-cpp-python 0.3.36) for pre-tokenizer
 * type "smollm": every \p{N} code point is split off first, then the GPT-2 split
 * ('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+) runs on each
 * piece, each word is byte-encoded (GPT-2 byte->unicode map) and merged by merge rank.
 * Special tokens are matched as whole strings before BPE (llama.cpp's st_partition).
 * Invalid UTF-8 input never fails: each bad byte becomes U+FFFD, as llama.cpp does.
 *
 * Error convention (common.h): HAT_OK or a HAT_ERR_* code with a message in err.
 * A tokenizer is immutable after init and may be shared between threads.
 */
#ifndef HAT_TOKENIZER_H
#define HAT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "engine/gguf.h"

typedef struct tokenizer tokenizer;

/* Longest piece (bytes) of any token; init rejects vocabularies with longer tokens, so an
 * output buffer of TOKENIZER_PIECE_MAX + 4 bytes always suffices for one decoder_push. */
#define TOKENIZER_PIECE_MAX 512

int tokenizer_init(tokenizer **out, const gguf_file *f, char *err, size_t errlen);
void tokenizer_free(tokenizer *t);

int tokenizer_n_vocab(const tokenizer *t);
int32_t tokenizer_bos(const tokenizer *t);   /* -1 when the model has none */
int32_t tokenizer_eos(const tokenizer *t);
int tokenizer_add_bos(const tokenizer *t);   /* tokenizer.ggml.add_bos_token (default 0) */
/* End of generation: eos plus the tokens llama.cpp adds by text (<|im_end|>, <|endoftext|>,
 * FIM repo/pad/sep markers such as <reponame>, ...). 0 for out-of-range ids. */
int tokenizer_is_eog(const tokenizer *t, int32_t id);
/* 1 for CONTROL/UNKNOWN tokens (rendered only on request), 0 otherwise or for bad ids. */
int tokenizer_is_control(const tokenizer *t, int32_t id);

/* Encodes len bytes of text (need not be NUL-terminated). Writes up to max ids to out, sets
 * *n_out to the number needed; returns HAT_ERR_ARG (with a message) if max is too small.
 * No BOS is added here. parse_special=1 matches CONTROL tokens (e.g. <|im_start|>) in the
 * text; user-defined tokens are matched either way (as llama.cpp does). */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int parse_special,
                     int32_t *out, int max, int *n_out, char *err, size_t errlen);

/* Piece of one token as raw bytes (byte-level mapping reversed; CONTROL tokens give their
 * text). Returns the piece length, writing min(length, buflen) bytes (snprintf-like, no NUL),
 * or -1 for a bad id. */
int tokenizer_piece(const tokenizer *t, int32_t id, char *buf, int buflen);

/* Streaming decoder: holds back an incomplete UTF-8 sequence at the end of the output so
 * that printing token by token never splits a character. The bytes produced by all pushes
 * plus the final flush equal the concatenated pieces exactly (invalid sequences pass
 * through unchanged rather than being replaced). */
typedef struct {
    unsigned char pend[4];  /* start of an incomplete UTF-8 sequence */
    int n_pend;
    int special;            /* 1: render CONTROL tokens as their text; 0 (default): skip */
} tokenizer_decoder;

void tokenizer_decoder_init(tokenizer_decoder *d);
/* Appends the printable bytes produced by token id to out; returns their count, or -1 for a
 * bad id or when outlen < piece length + 4 (then nothing is consumed). */
int tokenizer_decoder_push(tokenizer_decoder *d, const tokenizer *t, int32_t id, char *out, int outlen);
/* Emits whatever is still held back (an unfinished sequence, as is); returns the count. */
int tokenizer_decoder_flush(tokenizer_decoder *d, char *out, int outlen);

/* Renders [system (optional), user] with add_generation_prompt through the model's chat
 * template. Only ChatML templates (containing "<|im_start|>") are supported; a default
 * system block written as a literal in the template is used when system is NULL, exactly
 * as the Jinja template does. Writes a NUL-terminated string; *n_out = its length (without
 * NUL). HAT_ERR_UNSUPPORTED for other templates, HAT_ERR_NOTFOUND without a template,
 * HAT_ERR_ARG when outlen is too small (then *n_out is the length needed). */
int tokenizer_chat_format(const tokenizer *t, const char *system, const char *user,
                          char *out, size_t outlen, size_t *n_out, char *err, size_t errlen);

#endif
