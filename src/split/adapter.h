/* adapter.h — the device's draft adapter: a cheap stand-in for the cloud's middle layers.
 *
 * The device drafts with input submodel + adapter + output submodel. The adapter maps the residual
 * stream entering layer a (h_a: forward_state.x after layers [0,a)) to a stand-in for the one
 * entering layer L-b (h_{L-b}: after layers [a,L-b)), row by row, keeping the residual:
 *     out = h + f(h)
 *   identity: f = 0                          (plain layer skipping, no file needed)
 *   linear:   f(h) = W h + c                 W (dim, dim), c (dim)
 *   lowrank:  f(h) = U (Vt h) + c            Vt (rank, dim), U (dim, rank), c (dim)
 *
 * The adapter is fitted by `hat calibrate` (calib/adapter_fit.h: ridge regression of h_{L-b} - h_a on h_a,
 * and what goes into the fit; calib/calibrate.h); the device only loads and applies it.
 *
 * File format (little-endian; all offsets in bytes; version 1):
 *     0   char[8]  magic "HATADPT\0"
 *     8   u32      format version (1)
 *    12   u32      form (0 identity, 1 linear, 2 lowrank)
 *    16   u32      a             20  u32  b           24  u32  n_layer      28  u32  dim
 *    32   u32      rank (lowrank; 0 otherwise)       36  u32  min_pos (positions < min_pos not fitted)
 *    40   u64      model file size                   48  u32  model file CRC-32C   52  u32  0 (reserved)
 *    56   char[64] model name (general.name, UTF-8, NUL padded)
 *   120   f64      lambda (relative to trace(Cxx)/dim, see calib/adapter_fit.h)
 *   128   u64      training tokens                  136  u64  held-out tokens
 *   144   f64      R^2 of Y = h_{L-b} - h_a, training      152  f64  same, held-out
 *   160   f64      R^2 of h_{L-b}, training                168  f64  same, held-out
 *   176   f64      R^2 of h_{L-b} of the identity adapter (plain skipping), held-out
 *   184   f64      per-token fit error, held-out: sqrt(mean over tokens of |out - h_{L-b}|^2)
 *   192   f64      relative error, held-out: sqrt(sum |out - h_{L-b}|^2 / sum |h_{L-b}|^2)
 *   200   f64      draft agreement, held-out: fraction of generated positions where input submodel + adapter +
 *                  output submodel predict the full model's next token (greedy, true context), i.e. the
 *                  acceptance rate of a first drafted token
 *   208   f64      the same for the identity adapter (plain layer skipping)
 *   216   u64      positions the agreement was measured on
 *   224   i64      creation time (Unix seconds, UTC)
 *   232   char[16] hat version          248  char[16] hat git hash (NUL padded)
 *   264   u32      corpus description length n, then n bytes of UTF-8 text (no NUL)
 *   268+n f32      weights: linear W (dim x dim, row-major: W[i*dim+j] weighs input j in output i), c;
 *                  lowrank Vt (rank x dim, row-major), U (dim x rank, row-major), c; identity none
 *   end-4 u32      CRC-32C of every byte before it
 * Held-out figures are NaN when nothing was held out. A file is written to PATH.tmp and renamed.
 */
#ifndef HAT_ADAPTER_H
#define HAT_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

typedef enum { ADAPTER_IDENTITY = 0, ADAPTER_LINEAR = 1, ADAPTER_LOWRANK = 2 } adapter_form;

#define ADAPTER_FORMAT_VERSION 1

typedef struct adapter adapter;

/* Where an adapter came from and how well it fits; filled by the fit and the calibration (calib/), and by load. */
typedef struct {
    adapter_form form;
    int a, b, n_layer, dim, rank, min_pos;
    uint64_t model_size;
    uint32_t model_crc;
    char model_name[64];
    double lambda;
    uint64_t n_train, n_heldout;
    double r2_train, r2_heldout;                 /* of Y = h_{L-b} - h_a */
    double r2_target_train, r2_target_heldout;   /* of h_{L-b} */
    double r2_identity_heldout;                  /* of h_{L-b}, by the identity adapter */
    double rms_heldout, rel_err_heldout;         /* per-token error, absolute and relative */
    double agree_heldout, agree_identity_heldout; /* draft top-1 agreement with the full model, and identity's */
    uint64_t n_agree;                            /* positions the agreement was measured on */
    int64_t created;
    char hat_version[16], hat_git[16];
    char corpus[1024];                           /* what the adapter was fitted on (UTF-8) */
} adapter_info;

const char *adapter_form_name(adapter_form f);
/* "identity" / "linear" / "lowrank" -> form; -1 for anything else */
int adapter_form_parse(const char *s);

/* The model's fingerprint: file size and CRC-32C of the whole GGUF file. */
void adapter_model_fingerprint(const gguf_file *f, uint64_t *size, uint32_t *crc);

/* identity adapter (out = in: plain layer skipping), no file */
adapter *adapter_identity(int dim, int a, int b);

/* Loads and validates an adapter file: magic, version, size, CRC, dims, and that it was fitted for this
 * model (fingerprint of model_file, n_layer, dim) and this split (a, b). On a mismatch the one-line
 * message names the path, what the file was fitted for and what it is used with. */
int adapter_load(adapter **out, const char *path, const gguf_file *model_file, int n_layer, int dim, int a, int b,
                 char *err, size_t errlen);
/* Writes path.tmp, then renames it to path (a reader never sees half a file). */
int adapter_save(const adapter *ad, const char *path, char *err, size_t errlen);

/* out (n_tok, dim) = in + f(in), row by row. out may be in itself (else they must not overlap).
 * Allocation-free: works in blocks of rows through scratch allocated with the adapter, so two threads
 * must not apply the same adapter object at once. */
void adapter_apply(const adapter *ad, const float *in, float *out, int n_tok);
void adapter_free(adapter *ad);
adapter_form adapter_get_form(const adapter *ad);
const adapter_info *adapter_get_info(const adapter *ad);

/* One line: form, rank, lambda, split, calibration tokens, held-out R^2, draft agreement, corpus. */
void adapter_describe(const adapter *ad, char *buf, size_t len);

#endif
