/* fuzz_tokenizer.c — the real model's tokenizer on arbitrary bytes (HAT_FUZZ_MODEL, default
 * models/SmolLM2-135M-Instruct.Q4_1.gguf): encode with and without special-token parsing, the
 * chat template around it, and the streaming decoder over the ids (UTF-8 held back and flushed). */
#include "fuzz_util.h"

#include <string.h>

#include "core/common.h"
#include "engine/gguf.h"
#include "engine/tokenizer.h"

static gguf_file *g_f;
static tokenizer *g_t;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *m = getenv("HAT_FUZZ_MODEL");
    char err[HAT_ERRLEN];
    if (!m) m = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (gguf_open(&g_f, m, err, sizeof err) != HAT_OK || tokenizer_init(&g_t, g_f, err, sizeof err) != HAT_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s (set HAT_FUZZ_MODEL)\n", err);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    enum { MAX = 8192 };
    static int32_t ids[MAX];
    static char out[64];
    char err[HAT_ERRLEN];
    for (int special = 0; special < 2; special++) {
        int n = 0;
        if (tokenizer_encode(g_t, (const char *)data, size, special, ids, MAX, &n, err, sizeof err) != HAT_OK) continue;
        tokenizer_decoder dec;
        tokenizer_decoder_init(&dec);
        for (int i = 0; i < n; i++) (void)tokenizer_decoder_push(&dec, g_t, ids[i], out, sizeof out);
        (void)tokenizer_decoder_flush(&dec, out, sizeof out);
    }
    return 0;
}
