/* fuzz_seeds.c — writes the seed files the harnesses start from that no shipped file provides:
 * a small synthetic model (tests/support/tinymodel.h; scripts/fuzz.sh then fits an adapter and a
 * corpus for it with `hat calibrate`) and valid wire messages of each kind (header + checksum).
 * usage: fuzz_seeds DIR */
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "net/wire.h"
#include "support/tinymodel.h"

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "fuzz_seeds: cannot write %s", path);
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: fuzz_seeds DIR");
    char err[HAT_ERRLEN], path[1024];
    tinymodel_params p;
    tinymodel_defaults(&p);
    snprintf(path, sizeof path, "%s/tiny.gguf", argv[1]);
    CHECK(tinymodel_write(path, &p, err, sizeof err) == HAT_OK, "fuzz_seeds: %s", err);
    /* wire: a device's fp16 chunk of 2 rows of 64, the cloud's fp32 reply, token ids, a bye */
    static unsigned char msg[WIRE_HEADER_BYTES + 2 * 64 * 4];
    float rows[2 * 64];
    for (int i = 0; i < 2 * 64; i++) rows[i] = 0.01f * (float)i - 0.5f;
    const struct { const char *name; int kind, dtype, n_tok, dim, dev; } m[] = {
        {"hidden_up_f16", WIRE_HIDDEN_UP, WIRE_F16, 2, 64, 3},
        {"hidden_down_f32", WIRE_HIDDEN_DOWN, WIRE_F32, 2, 64, 3},
        {"tokens", WIRE_TOKENS, WIRE_TOKEN_I32, 2, 0, 0},
    };
    for (size_t k = 0; k < sizeof m / sizeof m[0]; k++) {
        wire_header h = {.magic = WIRE_MAGIC, .version = WIRE_VERSION, .kind = (uint16_t)m[k].kind, .device = (uint32_t)m[k].dev, .seq = 1, .pos0 = 0,
                         .n_tok = (uint32_t)m[k].n_tok, .dim = (uint32_t)m[k].dim, .dtype = (uint16_t)m[k].dtype};
        size_t payload;
        if (m[k].kind == WIRE_TOKENS) {
            const int32_t ids[2] = {5, 7};
            payload = sizeof ids;
            memcpy(msg + WIRE_HEADER_BYTES, ids, payload);
        } else {
            payload = wire_payload_bytes((wire_dtype)m[k].dtype, m[k].n_tok, m[k].dim);
            wire_encode((wire_dtype)m[k].dtype, rows, msg + WIRE_HEADER_BYTES, (size_t)m[k].n_tok * m[k].dim);
        }
        h.payload_bytes = payload;
        memcpy(msg, &h, sizeof h);
        wire_seal(msg);
        write_file(argv[1], m[k].name, msg, WIRE_HEADER_BYTES + payload);
    }
    return 0;
}
