/* fuzz_files.c — the adapter and corpus file readers on arbitrary bytes, checked against a small
 * synthetic model written at start-up (tests/support/tinymodel.h: the readers compare a file's
 * model fingerprint, layers and dim with the model they are used with). FUZZ_FILES_KIND selects
 * the reader: fuzz_adapter / fuzz_corpus are this file built twice. */
#include "fuzz_util.h"

#include <string.h>

#include "calib/corpus.h"
#include "core/common.h"
#include "engine/gguf.h"
#include "split/adapter.h"
#include "support/tinymodel.h"

static gguf_file *g_model;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    char err[HAT_ERRLEN], path[] = "/tmp/hat_fuzz_model_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    tinymodel_params p;
    tinymodel_defaults(&p);
    if (tinymodel_write(path, &p, err, sizeof err) != HAT_OK || gguf_open(&g_model, path, err, sizeof err) != HAT_OK) {
        fprintf(stderr, "fuzz_files: the synthetic model: %s\n", err);
        abort();
    }
    unlink(path);   /* mapped: stays readable */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[HAT_ERRLEN];
    int fd;
    const char *path = fuzz_as_file(data, size, &fd);
#if FUZZ_FILES_KIND == 0
    adapter *ad = NULL;
    if (adapter_load(&ad, path, g_model, 4, 128, 1, 1, err, sizeof err) == HAT_OK) adapter_free(ad);
#else
    corpus c;
    memset(&c, 0, sizeof c);
    if (corpus_load(&c, path, g_model, 8, err, sizeof err) == HAT_OK) corpus_free(&c);
#endif
    close(fd);
    return 0;
}
