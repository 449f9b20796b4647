/* test_cost_model.c — the one pass-time model (src/timing/cost_model.h) and its profiles files
 * (src/timing/profiles.h), against cases worked by hand:
 *   roofline  a memory-bound decode step, a compute-bound prefill, the LM head and embedding,
 *             tensor parallelism's all-reduces, a disabled profile
 *   split     the split mapped onto a deeper / shallower shape; the errors
 *   memory    a device's and a server's bytes
 *   files     devices/servers/shapes INI files: loaded values, a missing key, an unknown key, a bad
 *             value, the reserved name, heads not dividing hidden — each an error naming file:line
 *   configs   the shipped configs/devices.ini, servers.ini, shapes.ini load (argv[2]: source dir)
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/testutil.h"
#include "support/tmpfiles.h"
#include "timing/cost_model.h"
#include "timing/profiles.h"

#define NEAR(a, b) (fabs((a) - (b)) <= 1e-9 * fabs(b) + 1e-15)

/* 2 layers, hidden 64, ffn 128, 4 heads (kv 4), vocab 100, fp16 weights and cache */
static model_shape tiny(void) {
    model_shape s = {.name = "tiny", .layers = 2, .hidden = 64, .ffn = 128, .heads = 4, .kv_heads = 4, .vocab = 100,
                     .tied = 1, .bytes_per_weight = 2, .kv_bytes = 2};
    return s;
}

static void test_roofline(void) {
    const model_shape s = tiny();
    /* P_layer = 2*64^2 + 2*64*64 + 3*64*128 = 8192 + 8192 + 24576 = 40960 */
    EXPECT(cost_layer_params(&s) == 40960 && cost_embed_params(&s) == 6400, "params %g", cost_layer_params(&s));
    hw_profile hw = {.name = "h", .mem_bw_gbs = 1, .efficiency = 0.5, .tflops = 1e-6, .flops_efficiency = 0.5, .gpus = 1};
    /* decode: 1 token at position 9 over layers [0,2): ctx_sum 10, kv_sum 9
     * weights 2*40960*2 = 163840 B; kv 2 layers * 2 * 64 * 2 B * (9 + 1) = 5120 B
     * flops 2 * (2*40960 + 4*64*10) = 168960; mem_s = 168960 / 0.5e9; flop_s = 168960 / 0.5e6 */
    cost_work w = cost_work_seq(0, 2, 9, 1);
    EXPECT(w.n_tok == 1 && w.ctx_sum == 10 && w.kv_sum == 9, "work of one token at 9");
    cost_parts p;
    double t = cost_predict(&hw, &s, &w, &p);
    EXPECT(p.weight_bytes == 163840 && p.kv_bytes == 5120 && p.flops == 168960, "decode bytes %g %g flops %g",
           p.weight_bytes, p.kv_bytes, p.flops);
    EXPECT(NEAR(p.mem_s, 168960 / 0.5e9) && NEAR(p.flop_s, 168960 / 0.5e6) && NEAR(t, p.flop_s) && p.comm_s == 0,
           "slow flops: compute bound %g", t);
    hw.tflops = 1;   /* 1e12 * 0.5: now memory bound */
    t = cost_predict(&hw, &s, &w, &p);
    EXPECT(NEAR(t, 168960 / 0.5e9), "memory bound decode %g", t);
    /* prefill: 100 tokens from 0: ctx_sum = 5050, kv_sum 0; flops 2 * (2*40960*100 + 4*64*5050) = 18969600;
     * kv 2 * 2 * 64 * 2 * 100 = 51200 B */
    w = cost_work_seq(0, 2, 0, 100);
    hw.tflops = 1e-6;
    t = cost_predict(&hw, &s, &w, &p);
    EXPECT(p.flops == 18969600 && p.kv_bytes == 51200 && NEAR(t, 18969600 / 0.5e6), "prefill %g flops %g", t, p.flops);
    /* attention at its own rate (attn_tflops): 2 layers * 4*64*5050 = 2585600 attention FLOPs leave the
     * roofline's 18969600 - 2585600 = 16384000 and take 2585600 / 1e6 s after it */
    hw.attn_tflops = 1e-6;
    t = cost_predict(&hw, &s, &w, &p);
    EXPECT(p.attn_flops == 2585600 && NEAR(p.flop_s, 16384000 / 0.5e6) && NEAR(p.attn_s, 2.5856) &&
           NEAR(t, p.flop_s + p.attn_s), "attention's own rate: %g", t);
    hw.attn_tflops = 0;
    /* a batch of two sequences is the sum of their work, weights read once */
    cost_work b = cost_work_seq(0, 2, 9, 1);
    cost_work_add_seq(&b, 0, 100);
    t = cost_predict(&hw, &s, &b, &p);
    EXPECT(b.n_tok == 101 && b.ctx_sum == 5060 && p.weight_bytes == 163840 && p.flops == 168960 + 18969600,
           "batch: flops %g", p.flops);
    /* head (1 row) and embedding (100 rows): + 6400*2 B of head, + 100*64*2 B looked up, + 2*6400 FLOPs */
    w = cost_work_seq(0, 2, 0, 100);
    w.embed = 1;
    w.n_head = 1;
    cost_predict(&hw, &s, &w, &p);
    EXPECT(p.weight_bytes == 163840 + 12800 + 12800 && p.flops == 18969600 + 12800, "head + embed %g %g",
           p.weight_bytes, p.flops);
    /* tensor parallelism over 4 GPUs, link 1 GB/s, 1 us: per layer 2 all-reduces of 2*100*64 B:
     * 2*3/4*12800/1e9 + 2*3*1e-6 = 25.2e-6 each, 2 layers -> 100.8e-6 s; compute / 4 */
    hw = (hw_profile){.name = "s", .kind = HW_SERVER, .mem_bw_gbs = 1, .efficiency = 0.5, .tflops = 1e-6,
                      .flops_efficiency = 0.5, .gpus = 4, .link_gbs = 1, .link_latency_us = 1};
    w = cost_work_seq(0, 2, 0, 100);
    t = cost_predict(&hw, &s, &w, &p);
    EXPECT(NEAR(p.comm_s, 100.8e-6) && NEAR(p.flop_s, 18969600 / 0.5e6 / 4) && NEAR(t, p.flop_s + p.comm_s),
           "tp 4: comm %g flop %g", p.comm_s, p.flop_s);
    /* no layers: no all-reduce */
    w = cost_work_seq(0, 0, 0, 100);
    w.n_head = 1;
    cost_predict(&hw, &s, &w, &p);
    EXPECT(p.comm_s == 0 && p.weight_bytes == 12800, "head only: no all-reduce");
    /* disabled */
    const hw_profile none = {.name = "none"};
    EXPECT(cost_predict(&none, &s, &w, NULL) == 0 && !hw_enabled(&none) && !hw_enabled(NULL), "none predicts 0");
    w = cost_work_seq(0, 2, 0, 0);
    EXPECT(cost_predict(&hw, &s, &w, NULL) == 0, "no tokens: 0");
}

static void test_split(void) {
    char err[HAT_ERRLEN];
    model_shape s = tiny();
    int a, b;
    s.layers = 32;
    EXPECT(cost_map_split(&s, 30, 2, 2, &a, &b, err, sizeof err) == 0 && a == 2 && b == 2, "2/30 -> 2/32 (%d %d)", a, b);
    EXPECT(cost_map_split(&s, 30, 8, 8, &a, &b, err, sizeof err) == 0 && a == 9 && b == 9, "8/30 -> 9/32 (%d %d)", a, b);
    EXPECT(cost_map_split(&s, 32, 3, 5, &a, &b, err, sizeof err) == 0 && a == 3 && b == 5, "same depth: unchanged");
    s.layers = 80;   /* 3 * 80 / 30 = 8 exactly; 1 * 80 / 30 = 2.67 -> 3 */
    EXPECT(cost_map_split(&s, 30, 3, 1, &a, &b, err, sizeof err) == 0 && a == 8 && b == 3, "to 80 layers (%d %d)", a, b);
    s.layers = 4;    /* 2 * 4 / 30 = 0.27 -> 0 */
    EXPECT(cost_map_split(&s, 30, 2, 2, &a, &b, err, sizeof err) != 0 && strstr(err, "no layer") && strstr(err, "tiny"),
           "maps to zero device layers: %s", err);
    EXPECT(cost_map_split(&s, 30, 15, 14, &a, &b, err, sizeof err) != 0 && strstr(err, "nothing left for the cloud"),
           "nothing left: %s", err);
}

static void test_memory(void) {
    const model_shape s = tiny();
    /* device a=1 b=1: 2 layers * 40960 + embedding (tied: once) 6400 = 88320 params * 2 B = 176640 B;
     * caches 2 layers * 2 * 64 * 2 B * 10 positions = 5120 B */
    EXPECT(cost_device_bytes(&s, 1, 1, 10) == 176640 + 5120, "device bytes %g", cost_device_bytes(&s, 1, 1, 10));
    model_shape u = s;
    u.tied = 0;   /* untied: the head too */
    EXPECT(cost_device_bytes(&u, 1, 1, 10) == 176640 + 12800 + 5120, "untied device bytes");
    u.layers = 4;   /* server: the 2 middle layers of 4 with a=b=1, 3 sessions of 10 positions */
    EXPECT(cost_server_bytes(&u, 1, 1, 10, 3) == 2 * 40960 * 2 + 3 * 5120.0, "server bytes %g",
           cost_server_bytes(&u, 1, 1, 10, 3));
}

static void expect_err(const char *text, int kind, int shapes, const char *frag, const char *what) {
    char err[HAT_ERRLEN] = "";
    const char *path = tmp_file_named("hat_prof_", text, ".ini");
    int rc, n = 0;
    if (shapes) {
        model_shape *sp = NULL;
        rc = shapes_load(path, &sp, &n, err, sizeof err);
        free(sp);
    } else {
        hw_profile *hp = NULL;
        rc = hw_profiles_load(path, kind, &hp, &n, err, sizeof err);
        free(hp);
    }
    EXPECT(rc != 0 && strstr(err, frag) && strstr(err, path), "%s: rc %d, '%s'", what, rc, err);
}

static void test_files(void) {
    char err[HAT_ERRLEN] = "";
    const char *srv = "[box]\nmem_bw_gbs = 768\nefficiency = 0.8\ntflops = 154.8\nflops_efficiency = 0.6\nmem_gb = 48\n"
                      "gpus = 8\nlink_gbs = 25\nlink_latency_us = 10\nsource = \"a datasheet\"\n";
    hw_profile *hp = NULL;
    int n = 0;
    EXPECT(hw_profiles_load(tmp_file_named("hat_srv_", srv, ".ini"), HW_SERVER, &hp, &n, err, sizeof err) == 0 && n == 1 &&
           hp[0].gpus == 8 && hp[0].link_gbs == 25 && hp[0].tflops == 154.8 && hp[0].kind == HW_SERVER &&
           !strcmp(hp[0].source, "a datasheet"), "server profile loads: %s", err);
    free(hp);
    /* the same text as a devices file: gpus etc. are unknown keys there */
    expect_err(srv, HW_DEVICE, 0, "gpus", "a server key in a devices file");
    expect_err("[d]\nmem_bw_gbs = 68\nefficiency = 0.7\ntflops = 10\nmem_gb = 8\nsource = \"x\"\n", HW_DEVICE, 0,
               "lacks the required key 'flops_efficiency'", "missing key");
    expect_err("[d]\nmem_bw_gbs = -1\nefficiency = 0.7\ntflops = 10\nflops_efficiency = 0.5\nmem_gb = 8\nsource = \"x\"\n",
               HW_DEVICE, 0, "mem_bw_gbs", "negative bandwidth");
    expect_err("[d]\nmem_bw_gbs = 1\nefficiency = 1.5\ntflops = 10\nflops_efficiency = 0.5\nmem_gb = 8\nsource = \"x\"\n",
               HW_DEVICE, 0, "efficiency", "efficiency above 1");
    expect_err("[none]\nmem_bw_gbs = 1\nefficiency = 1\ntflops = 10\nflops_efficiency = 0.5\nmem_gb = 8\nsource = \"x\"\n",
               HW_DEVICE, 0, "reserved", "the name none");
    expect_err("# nothing\n", HW_SERVER, 0, "no profiles", "empty file");
    const char *shp = "[m]\nlayers = 32\nhidden = 4096\nffn = 11008\nheads = 32\nkv_heads = 32\nvocab = 32000\n"
                      "tied_embeddings = 0\nbytes_per_weight = 2\nsource = \"config.json\"\n";
    model_shape *sp = NULL;
    EXPECT(shapes_load(tmp_file_named("hat_shp_", shp, ".ini"), &sp, &n, err, sizeof err) == 0 && n == 1 &&
           sp[0].layers == 32 && sp[0].kv_bytes == 2 && !sp[0].tied, "shape loads, kv_bytes defaults to 2: %s", err);
    /* LLaMA-2-7B: P_layer = 2*4096^2 + 2*4096^2 + 3*4096*11008 = 202375168; fp16: 405 MB a layer (HAT.md) */
    EXPECT(cost_layer_params(&sp[0]) == 202375168.0, "llama-2-7b layer params %g", cost_layer_params(&sp[0]));
    free(sp);
    expect_err("[m]\nlayers = 32\nhidden = 4096\nffn = 11008\nheads = 30\nkv_heads = 30\nvocab = 32000\n"
               "tied_embeddings = 0\nbytes_per_weight = 2\nsource = \"x\"\n", 0, 1, "multiple of heads", "heads not dividing");
    expect_err("[m]\nlayers = 32\nhidden = 4096\nffn = 11008\nheads = 32\nkv_heads = 32\nvocab = 32000\n"
               "tied_embeddings = 0\nbytes_per_weight = 2\nsource = \"x\"\ncolour = red\n", 0, 1, "colour", "unknown key");
    expect_err("[m]\nhidden = 4096\nffn = 11008\nheads = 32\nkv_heads = 32\nvocab = 32000\n"
               "tied_embeddings = 0\nbytes_per_weight = 2\nsource = \"x\"\n", 0, 1, "'layers'", "missing layers");
    tmp_files_remove();
}

static void test_configs(const char *src) {
    char path[1024], err[HAT_ERRLEN] = "";
    int n = 0;
    hw_profile *hp = NULL;
    snprintf(path, sizeof path, "%s/configs/devices.ini", src);
    EXPECT(hw_profiles_load(path, HW_DEVICE, &hp, &n, err, sizeof err) == 0 && n >= 4, "devices.ini: %s", err);
    free(hp);
    snprintf(path, sizeof path, "%s/configs/servers.ini", src);
    EXPECT(hw_profiles_load(path, HW_SERVER, &hp, &n, err, sizeof err) == 0 && n >= 4, "servers.ini: %s", err);
    int a6000 = 0;
    for (int i = 0; i < n; i++) a6000 |= !strcmp(hp[i].name, "a6000-8x") && hp[i].gpus == 8;
    EXPECT(a6000, "servers.ini has the paper's a6000-8x");
    free(hp);
    model_shape *sp = NULL;
    snprintf(path, sizeof path, "%s/configs/shapes.ini", src);
    EXPECT(shapes_load(path, &sp, &n, err, sizeof err) == 0 && n >= 3, "shapes.ini: %s", err);
    free(sp);
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "all";
    const int all = !strcmp(part, "all");
    if (all || !strcmp(part, "roofline")) test_roofline();
    if (all || !strcmp(part, "split")) test_split();
    if (all || !strcmp(part, "memory")) test_memory();
    if (all || !strcmp(part, "files")) test_files();
    if ((all || !strcmp(part, "configs")) && argc > 2) test_configs(argv[2]);
    return test_summary();
}
