/* profiles.h — the hardware profiles files (configs/devices.ini, configs/servers.ini) and the
 * model shapes file (configs/shapes.ini) of timing/cost_model.h: strict INI (core/ini.h), one
 * section per profile or shape, every key required unless marked, each error naming file:line.
 *
 *   devices.ini  mem_bw_gbs, efficiency, tflops, flops_efficiency, mem_gb, source, attn_tflops [0]
 *   servers.ini  the same, and gpus, link_gbs, link_latency_us
 *   shapes.ini   layers, hidden, ffn, heads, kv_heads, vocab, tied_embeddings, bytes_per_weight,
 *                kv_bytes [2], source
 * The name "none" is reserved (compute = none switches emulation off).
 */
#ifndef HAT_PROFILES_H
#define HAT_PROFILES_H

#include <stddef.h>

#include "timing/cost_model.h"

/* all profiles of a file of the given kind (hw_kind) into *out (owned; free()) */
int hw_profiles_load(const char *path, int kind, hw_profile **out, int *n, char *err, size_t errlen);
/* all shapes of a shapes file */
int shapes_load(const char *path, model_shape **out, int *n, char *err, size_t errlen);

#endif
