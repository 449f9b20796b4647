/* fuzz_gguf.c — the GGUF reader on arbitrary bytes: gguf_open_buffer, then what start-up reads of
 * an accepted file (the hyper-parameters, the tokenizer's vocabulary), and the integrity scan of
 * every tensor. Any outcome but a crash, a sanitizer report or a hang is fine. */
#include "fuzz_util.h"

#include "core/common.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    char err[HAT_ERRLEN];
    if (gguf_open_buffer(&f, data, size, "fuzz.gguf", err, sizeof err) != HAT_OK) return 0;
    model_config mc;
    (void)model_read_config(f, &mc, err, sizeof err);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        (void)quant_first_nonfinite(f->tensors[i].type, f->tensors[i].data, f->tensors[i].nbytes);
    tokenizer *t = NULL;
    if (tokenizer_init(&t, f, err, sizeof err) == HAT_OK) {
        int32_t ids[64];
        int n = 0;
        (void)tokenizer_encode(t, "Hello, world", 12, 1, ids, 64, &n, err, sizeof err);
        tokenizer_free(t);
    }
    gguf_close(f);
    return 0;
}
