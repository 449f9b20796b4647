/* test_config.c — config_load / config_validate: a full configuration resolved field by field,
 * the resolved text reloaded to the same configuration, the shipped configs/, and bad inputs,
 * each rejected with a message naming the key and value or file:line.
 * Usage: test_config <source dir>   (the shipped configs are read from <source dir>/configs) */
#define _GNU_SOURCE   /* mkstemps */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "run/config.h"
#include "support/testutil.h"
#include "support/tmpfiles.h"

/* ---- temporary files (support/tmpfiles.h: mkstemps under /tmp, removed at the end) */
static const char *tmp_file_ext(const char *text, const char *ext) { return tmp_file_named("hat_cfg_", text, ext); }
static const char *tmp_file(const char *text) { return tmp_file_ext(text, ""); }

static const char *LINKS =
    "# test link profiles\n"
    "[fast]\nup_mbps = 100\ndown_mbps = 200\nlatency_ms = 5\njitter_ms = 1\njitter = normal\nsource = test numbers\n"
    "[slow]\nup_mbps = 2.5\ndown_mbps = 10\nlatency_ms = 40\njitter_ms = 10\njitter = exponential\n"
    "source = \"slow link; with # and ; inside\"\n";
static const char *DEVICES = "[boardA]\nmem_bw_gbs = 50\nefficiency = 0.5\ntflops = 2\nflops_efficiency = 0.5\n"
                             "mem_gb = 8\nsource = test board\n";
static const char *SERVERS = "[box]\nmem_bw_gbs = 768\nefficiency = 0.8\ntflops = 150\nflops_efficiency = 0.6\n"
                             "mem_gb = 48\ngpus = 8\nlink_gbs = 25\nlink_latency_us = 10\nsource = test box\n"
                             "[tiny]\nmem_bw_gbs = 1\nefficiency = 1\ntflops = 1\nflops_efficiency = 1\n"
                             "mem_gb = 0.001\ngpus = 1\nlink_gbs = 1\nlink_latency_us = 0\nsource = too small\n";
static const char *SHAPES = "[big]\nlayers = 32\nhidden = 4096\nffn = 11008\nheads = 32\nkv_heads = 32\n"
                            "vocab = 32000\ntied_embeddings = 0\nbytes_per_weight = 2\nsource = test shape\n"
                            "[shallow]\nlayers = 4\nhidden = 64\nffn = 128\nheads = 4\nkv_heads = 4\n"
                            "vocab = 100\ntied_embeddings = 1\nbytes_per_weight = 2\nsource = test shape\n";
static const char *PROMPTS = "first prompt\n\n   \n  second\\nline  \nthird\r\n";
static const char *links_path, *devices_path, *prompts_path;

#define MODEL_OK "path = m.gguf\n"
#define DEV_OK "count = 2\nlink = fast\nprompt = hi\n"

/* [model] <model> [profiles] (test files) [devices] <devices> <tail>; with MODEL_OK and
 * DEV_OK the tail starts at line 10 */
static const char *cfg(const char *model, const char *devices, const char *tail) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "[model]\n%s[profiles]\nlinks = %s\ndevices = %s\n[devices]\n%s%s", model, links_path,
             devices_path, devices, tail);
    return buf;
}

/* needles starting with ':' are "<file>:<line>:" of the temporary config file */
static void expect_in(const char *label, const char *err, const char *path, const char *needle) {
    char want[128];
    if (!needle) return;
    if (needle[0] == ':') snprintf(want, sizeof want, "%s%s", path, needle);
    else snprintf(want, sizeof want, "%s", needle);
    EXPECT(strstr(err, want) != NULL, "%s: message \"%s\" lacks \"%s\"", label, err, want);
}

static void expect_bad(const char *label, const char *text, const char *n1, const char *n2) {
    hat_config c;
    char err[HAT_ERRLEN] = "";
    const char *path = tmp_file(text);
    int rc = config_load(&c, path, err, sizeof err);
    EXPECT(rc != HAT_OK, "%s: accepted", label);
    expect_in(label, err, path, n1);
    expect_in(label, err, path, n2);
    EXPECT(!c.dev && !c.resolved && c.n_devices == 0, "%s: config not freed on error", label);
    config_free(&c);
}

static void expect_invalid(const char *label, const char *text, int world, int n_layer, int n_ctx, const char *n1,
                           const char *n2) {
    hat_config c;
    char err[HAT_ERRLEN] = "";
    int rc = config_load(&c, tmp_file(text), err, sizeof err);
    EXPECT(rc == HAT_OK, "%s: load failed: %s", label, err);
    if (rc == HAT_OK) {
        rc = config_validate(&c, world, n_layer, n_ctx, err, sizeof err);
        EXPECT(rc != HAT_OK, "%s: validated", label);
        expect_in(label, err, "", n1);
        expect_in(label, err, "", n2);
    }
    config_free(&c);
}

/* first difference between two configurations (all fields but path and resolved), or NULL */
static const char *cfg_diff(const hat_config *x, const hat_config *y) {
#define D(cond, what) if (!(cond)) return what
    D(!strcmp(x->mode, y->mode) && x->seed == y->seed && !strcmp(x->trace, y->trace), "[run]");
    D(!strcmp(x->model_path, y->model_path) && x->ctx == y->ctx && x->device_threads == y->device_threads &&
      x->cloud_threads == y->cloud_threads, "[model]");
    D(x->a == y->a && x->b == y->b, "[split]");
    D(x->n_cloud == y->n_cloud && !strcmp(x->scheme, y->scheme) && x->max_batch_tokens == y->max_batch_tokens, "[cloud]");
    D(x->wire == y->wire && x->chunk_tokens == y->chunk_tokens && x->inflight == y->inflight &&
      x->emulate_links == y->emulate_links && x->chunking == y->chunking && x->max_stall_ms == y->max_stall_ms,
      "[transport]");
    D(!strcmp(x->links_path, y->links_path) && !strcmp(x->devices_path, y->devices_path), "[profiles]");
    D(x->fault == y->fault && x->fault_device == y->fault_device && x->fault_seq == y->fault_seq, "[fault]");
    D(x->n_devices == y->n_devices, "count");
    for (int i = 0; i < x->n_devices; i++) {
        const device_cfg *a = &x->dev[i], *b = &y->dev[i];
        D(!strcmp(a->prompt, b->prompt), "prompt");
        D(a->chat == b->chat && a->max_tokens == b->max_tokens && a->start_s == b->start_s, "chat/max_tokens/start_s");
        D(a->chunking == b->chunking, "chunking");
        D(a->temp == b->temp && a->top_p == b->top_p && a->top_k == b->top_k, "sampling");
        D(!memcmp(&a->link, &b->link, sizeof a->link), "link profile");
        D(!memcmp(&a->compute, &b->compute, sizeof a->compute), "compute profile");
    }
    return NULL;
#undef D
}

/* the resolved text without comment lines */
static char *strip_comments(const char *s) {
    char *out = xmalloc(strlen(s) + 1), *w = out;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s + 1) : strlen(s);
        if (*s != '#') { memcpy(w, s, n); w += n; }
        s += n;
    }
    *w = 0;
    return out;
}

static void test_full(void) {
    char text[4096], err[HAT_ERRLEN] = "";
    snprintf(text, sizeof text,
             "# every section; left-out keys take their defaults\n"
             "[run]\nmode = ushape\nseed = 18446744073709551615\ntrace = /tmp/hat trace.h5   ; inline comment\n"
             "[model]\npath = models/m.gguf\nctx = 256\ndevice_threads = 2\n"
             "[split]\na = 3\nb = 4\n"
             "[cloud]\nranks = 2\nmax_batch_tokens = 64\n"
             "[transport]\nwire_dtype = bf16\nchunk_tokens = 8\ninflight = 2\nemulate_links = off\nchunking = dynamic\n"
             "max_stall_ms = 12.5\n"
             "[profiles]\nlinks = %s\ndevices = %s\n"
             "[devices]\ncount = 5\nlink = fast\ncompute = boardA\nprompts = %s\nprompt = unused fallback\nchat = off\n"
             "max_tokens = 10\nstart_interval_s = 0.5\ntemp = 0.7\ntop_k = 40\ntop_p = 0.9\n"
             "[device.1]\nlink = slow\ncompute = none\nchunking = off\n"
             "prompt = \"override # not a comment; \\\"quoted\\\"\\tTab\\\\n\"   # comment\n"
             "start_s = 0.25\nmax_tokens = 3\nchat = ON\ntemp = 0\ntop_k = 1\ntop_p = 1\n"
             "\n   ; indented comment\n[device.3]\ncompute = boardA\n"
             "[fault]\nkind = bad_checksum\ndevice = 4\nat_seq = 7\n",
             links_path, devices_path, prompts_path);
    hat_config c, r;
    int rc = config_load(&c, tmp_file(text), err, sizeof err);
    EXPECT(rc == HAT_OK, "full config: %s", err);
    if (rc) return;
    EXPECT(!strcmp(c.mode, "ushape") && c.seed == UINT64_MAX && !strcmp(c.trace, "/tmp/hat trace.h5"), "[run]: %s", c.trace);
    EXPECT(!strcmp(c.model_path, "models/m.gguf") && c.ctx == 256 && c.device_threads == 2 && c.cloud_threads == 1, "[model]");
    EXPECT(c.a == 3 && c.b == 4, "[split]");
    EXPECT(c.n_cloud == 2 && !strcmp(c.scheme, "replica") && c.max_batch_tokens == 64, "[cloud]");
    EXPECT(c.wire == WIRE_BF16 && c.chunk_tokens == 8 && c.inflight == 2 && c.emulate_links == 0, "[transport]");
    EXPECT(c.chunking == CHUNK_DYNAMIC && c.max_stall_ms == 12.5 && c.dev[0].chunking == CHUNK_DYNAMIC &&
           c.dev[1].chunking == CHUNK_OFF && c.dev[2].chunking == CHUNK_DYNAMIC, "chunking: the default and an override");
    EXPECT(c.fault == FAULT_BAD_CHECKSUM && c.fault_device == 4 && c.fault_seq == 7, "[fault]");
    EXPECT(c.n_devices == 5 && c.dev, "count");
    const char *want_prompt[5] = {"first prompt", "override # not a comment; \"quoted\"\tTab\\n", "third", "first prompt",
                                  "second\nline"};
    const double want_start[5] = {0, 0.25, 1.0, 1.5, 2.0};
    for (int i = 0; i < 5 && c.dev; i++) {
        const device_cfg *d = &c.dev[i];
        EXPECT(!strcmp(d->prompt, want_prompt[i]), "device %d prompt '%s'", i, d->prompt);
        EXPECT(d->start_s == want_start[i], "device %d start_s %g", i, d->start_s);
        if (i == 1) continue;
        EXPECT(d->chat == 0 && d->max_tokens == 10 && d->temp == 0.7f && d->top_k == 40 && d->top_p == 0.9f,
               "device %d defaults", i);
        EXPECT(!strcmp(d->link.name, "fast") && d->link.up_mbps == 100 && d->link.down_mbps == 200 &&
               d->link.latency_ms == 5 && d->link.jitter_ms == 1 && d->link.jitter == JITTER_NORMAL &&
               !strcmp(d->link.source, "test numbers"), "device %d link", i);
        EXPECT(!strcmp(d->compute.name, "boardA") && d->compute.mem_bw_gbs == 50 && d->compute.efficiency == 0.5 &&
               d->compute.tflops == 2 && !strcmp(d->compute.source, "test board"), "device %d compute", i);
    }
    const device_cfg *d1 = &c.dev[1];
    EXPECT(d1->chat == 1 && d1->max_tokens == 3 && d1->temp == 0 && d1->top_k == 1 && d1->top_p == 1, "device 1 overrides");
    EXPECT(!strcmp(d1->link.name, "slow") && d1->link.up_mbps == 2.5 && d1->link.jitter == JITTER_EXPONENTIAL &&
           !strcmp(d1->link.source, "slow link; with # and ; inside"), "device 1 link");
    EXPECT(!strcmp(d1->compute.name, "none") && d1->compute.mem_bw_gbs == 0 && d1->compute.efficiency == 0 &&
           d1->compute.tflops == 0 && !d1->compute.source[0], "device 1 compute none");
    EXPECT(c.resolved && strstr(c.resolved, "[device.4]") && strstr(c.resolved, "[resolved_profiles]") &&
           strstr(c.resolved, "source: test board") && strstr(c.resolved, "source: slow link; with # and ; inside"),
           "resolved text:\n%s", c.resolved ? c.resolved : "(null)");

    /* the resolved text, saved and loaded again, is the same configuration */
    rc = config_load(&r, tmp_file(c.resolved), err, sizeof err);
    EXPECT(rc == HAT_OK, "reload of resolved: %s\n%s", err, c.resolved);
    if (rc == HAT_OK) {
        const char *diff = cfg_diff(&c, &r);
        EXPECT(!diff, "resolved round trip differs in %s", diff);
        char *s1 = strip_comments(c.resolved), *s2 = strip_comments(r.resolved);
        EXPECT(!strcmp(s1, s2), "resolved of resolved differs:\n%s\n---\n%s", s1, s2);
        free(s1);
        free(s2);
    }
    config_free(&r);
    config_free(&c);
    config_free(&c);   /* safe twice */
}

/* a JSON-lines prompts file: its prompts (real newlines, a literal backslash-n, quotes, tabs,
 * Unicode) reach the devices and survive the resolved text; a broken line is named FILE:LINE: */
static void test_jsonl(void) {
    static const char *want[] = {"line one\nline two \\n stays \"q\"\tend", "caf\xc3\xa9 \xe2\x82\xac\n"};
    const char *jl = tmp_file_ext("{\"prompt\": \"line one\\nline two \\\\n stays \\\"q\\\"\\tend\", \"source\": \"t\"}\n"
                                  "\n{\"tokens\": 3, \"prompt\": \"caf\\u00e9 \xe2\x82\xac\\n\"}\n", ".jsonl");
    char devs[128], err[HAT_ERRLEN] = "";
    snprintf(devs, sizeof devs, "count = 3\nlink = fast\nprompts = %s\n", jl);
    hat_config c, r;
    int rc = config_load(&c, tmp_file(cfg(MODEL_OK, devs, "")), err, sizeof err);
    EXPECT(rc == HAT_OK, "jsonl prompts: %s", err);
    if (rc != HAT_OK) return;
    for (int i = 0; i < 3; i++)
        EXPECT(!strcmp(c.dev[i].prompt, want[i % 2]), "jsonl device %d prompt '%s'", i, c.dev[i].prompt);
    rc = config_load(&r, tmp_file(c.resolved), err, sizeof err);
    EXPECT(rc == HAT_OK, "reload of resolved (jsonl): %s\n%s", err, c.resolved);
    if (rc == HAT_OK) {
        const char *diff = cfg_diff(&c, &r);
        EXPECT(!diff, "resolved round trip (jsonl) differs in %s", diff);
    }
    config_free(&r);
    config_free(&c);
    jl = tmp_file_ext("{\"prompt\": \"fine\"}\n{\"prompt\": \"broken}\n", ".jsonl");
    char where[64];
    snprintf(devs, sizeof devs, "count = 2\nlink = fast\nprompts = %s\n", jl);
    snprintf(where, sizeof where, "%s:2:", jl);
    expect_bad("broken jsonl prompts file", cfg(MODEL_OK, devs, ""), where, "not a JSON object");
}

static void test_defaults(void) {
    hat_config c;
    char err[HAT_ERRLEN] = "";
    int rc = config_load(&c, tmp_file(cfg(MODEL_OK, DEV_OK, "")), err, sizeof err);
    EXPECT(rc == HAT_OK, "minimal config: %s", err);
    if (rc) return;
    EXPECT(!strcmp(c.mode, "ushape") && c.seed == 1 && !strcmp(c.trace, "results/trace.h5"), "[run] defaults");
    EXPECT(c.ctx == 1024 && c.device_threads == 1 && c.cloud_threads == 1, "[model] defaults");
    EXPECT(c.a == 2 && c.b == 2 && c.n_cloud == 1 && c.max_batch_tokens == 256, "[split]/[cloud] defaults");
    EXPECT(c.wire == WIRE_F32 && c.chunk_tokens == 32 && c.inflight == 4 && c.emulate_links == 1, "[transport] defaults");
    EXPECT(c.chunking == CHUNK_FIXED && c.max_stall_ms == 0 && c.dev[0].chunking == CHUNK_FIXED, "chunking defaults");
    EXPECT(c.fault == FAULT_NONE && c.fault_device == 0 && c.fault_seq == 1, "[fault] defaults");
    for (int i = 0; i < 2; i++) {
        const device_cfg *d = &c.dev[i];
        EXPECT(!strcmp(d->prompt, "hi") && d->chat == 1 && d->max_tokens == 32 && d->start_s == 0 && d->temp == 0 &&
               d->top_k == 0 && d->top_p == 1 && !strcmp(d->compute.name, "none"), "device %d defaults", i);
    }
    EXPECT(config_validate(&c, 3, 30, 8192, err, sizeof err) == HAT_OK, "validate: %s", err);
    config_free(&c);

    /* a UTF-8 byte order mark and CRLF line ends are accepted */
    char text[2048];
    snprintf(text, sizeof text, "\xEF\xBB\xBF[model]\r\npath = m.gguf\r\n[profiles]\r\nlinks = %s\r\ndevices = %s\r\n"
             "[devices]\r\ncount = 1\r\nlink = slow\r\nprompt = \"crlf\"\r\n", links_path, devices_path);
    rc = config_load(&c, tmp_file(text), err, sizeof err);
    EXPECT(rc == HAT_OK && !strcmp(c.dev[0].prompt, "crlf") && !strcmp(c.dev[0].link.name, "slow"), "BOM + CRLF: %s", err);
    config_free(&c);
}

/* the documented maximum device count loads, prefill_order is read, and loading stays linear in
 * the device count (a quadratic step took minutes at 65,536 devices; ctest's timeout bounds it) */
static void test_scale(void) {
    hat_config c;
    char err[HAT_ERRLEN] = "";
    int rc = config_load(&c, tmp_file(cfg(MODEL_OK, "count = 65536\nlink = fast\nprompt = hi\n",
                                          "[cloud]\nprefill_order = fair\n")), err, sizeof err);
    EXPECT(rc == HAT_OK && c.n_devices == 65536 && c.prefill_order == PREFILL_FAIR, "65536 devices: %s", err);
    if (!rc) {
        EXPECT(strstr(c.resolved, "[device.65535]") && strstr(c.resolved, "prefill_order = fair"), "resolved text");
        config_free(&c);
    }
    rc = config_load(&c, tmp_file(cfg(MODEL_OK, DEV_OK, "")), err, sizeof err);
    EXPECT(rc == HAT_OK && c.prefill_order == PREFILL_FCFS, "prefill_order default fcfs: %s", err);
    if (!rc) config_free(&c);
}

static int words(const char *s) {
    int n = 0;
    for (int in = 0; *s; s++) {
        int w = !strchr(" \t\n", *s);
        n += w && !in;
        in = w;
    }
    return n;
}

static void test_shipped(const char *srcdir) {
    hat_config c;
    char err[HAT_ERRLEN] = "";
    CHECK(chdir(srcdir) == 0, "cannot chdir to %s", srcdir);
    int rc = config_load(&c, "configs/quickstart.ini", err, sizeof err);
    EXPECT(rc == HAT_OK, "quickstart.ini: %s", err);
    if (rc == HAT_OK) {
        rc = config_validate(&c, 3, 30, 8192, err, sizeof err);
        EXPECT(rc == HAT_OK, "quickstart.ini validate (world 3, 30 layers): %s", err);
        EXPECT(config_validate(&c, 2, 30, 8192, err, sizeof err) != HAT_OK, "quickstart world 2 accepted");
        EXPECT(!strcmp(c.model_path, "models/SmolLM2-135M-Instruct.Q4_1.gguf") && c.ctx == 512 && c.a == 8 && c.b == 8 &&
               c.n_cloud == 1 && c.n_devices == 2 && c.wire == WIRE_F16 && c.chunk_tokens == 16 &&
               !strcmp(c.trace, "results/quickstart.h5"), "quickstart fields");
        EXPECT(!strcmp(c.dev[0].link.name, "wifi") && !strcmp(c.dev[1].link.name, "4g"), "quickstart links");
        EXPECT(c.run_mode == RUN_HAT && c.gamma == 2 && c.gamma_adaptive && c.gamma_min == 1 && c.gamma_max == 6 &&
               !strcmp(c.adapter_path, "models/smollm2-a8b8.linear.adapter"), "quickstart [hat]");
        EXPECT(c.dev[0].max_tokens == 24 && c.dev[1].max_tokens == 24, "quickstart max_tokens");
        EXPECT(!strncmp(c.dev[0].prompt, "What is the capital", 19), "quickstart prompt 0: %s", c.dev[0].prompt);
        EXPECT(strcmp(c.dev[0].prompt, c.dev[1].prompt) != 0, "quickstart prompts rotate");
    }
    config_free(&c);

    /* every shipped profile loads, with its numbers and a source; prompts.txt has 8 prompts */
    static const char *lk[] = {"ethernet", "wifi", "5g", "4g", "lan-ideal"};
    static const char *dv[] = {"jetson-agx-orin", "jetson-orin-nx-16gb", "jetson-orin-nano-8gb", "raspberry-pi-5"};
    static const double bw[] = {204.8, 102.4, 68, 17.07};
    char text[2048];
    int len = snprintf(text, sizeof text, "[model]\npath = m.gguf\n[devices]\ncount = 9\nprompts = configs/prompts.txt\n");
    for (int i = 0; i < 5; i++)
        len += snprintf(text + len, sizeof text - (size_t)len, "[device.%d]\nlink = %s\ncompute = %s\n", i, lk[i],
                        i < 4 ? dv[i] : "none");
    rc = config_load(&c, tmp_file(text), err, sizeof err);
    EXPECT(rc == HAT_OK, "shipped profiles: %s", err);
    for (int i = 0; rc == HAT_OK && i < 5; i++) {
        const link_profile *l = &c.dev[i].link;
        EXPECT(!strcmp(l->name, lk[i]) && l->up_mbps > 0 && l->down_mbps >= l->up_mbps && l->latency_ms >= 0 &&
               (i == 4 || strlen(l->source) > 100), "link profile %s", lk[i]);
        if (i < 4)
            EXPECT(c.dev[i].compute.mem_bw_gbs == bw[i] && c.dev[i].compute.efficiency >= 0.6 &&
                   c.dev[i].compute.efficiency <= 0.8 && c.dev[i].compute.tflops > 0 &&
                   strlen(c.dev[i].compute.source) > 100, "device profile %s", dv[i]);
    }
    for (int i = 0; rc == HAT_OK && i < 8; i++) {
        int w = words(c.dev[i].prompt);
        EXPECT(w >= 5 && w <= 30, "prompt %d has %d words", i, w);
    }
    if (rc == HAT_OK) {
        EXPECT(!strcmp(c.dev[8].prompt, c.dev[0].prompt), "prompts.txt has 8 prompts");
        EXPECT(strchr(c.dev[6].prompt, '\n') != NULL, "\\n in prompts.txt becomes a newline");
    }
    config_free(&c);
}

static void test_bad(void) {
    char text[2048];
    /* unknown names, bad numbers and enums */
    expect_bad("unknown key", cfg(MODEL_OK, DEV_OK, "[run]\nspeed = 3\n"), ":11:", "unknown key 'speed' in [run]");
    expect_bad("unknown section", cfg(MODEL_OK, DEV_OK, "[runn]\nmode = ushape\n"), ":10:", "unknown section [runn]");
    expect_bad("bad int", cfg(MODEL_OK, DEV_OK, "[transport]\nchunk_tokens = abc\n"), ":11:", "chunk_tokens = 'abc'");
    expect_bad("trailing junk", cfg(MODEL_OK, DEV_OK, "[transport]\nchunk_tokens = 16x\n"), ":11:", "'16x'");
    /* values past a buffer-sizing key's range: refused naming the key, before anything is allocated */
    expect_bad("huge inflight", cfg(MODEL_OK, DEV_OK, "[transport]\ninflight = 100000000\n"), ":11:",
               "inflight = '100000000': at most 256");
    expect_bad("huge max_batch_tokens", cfg(MODEL_OK, DEV_OK, "[cloud]\nmax_batch_tokens = 2000000000\n"), ":11:",
               "max_batch_tokens = '2000000000': at most 65536");
    expect_bad("huge ctx", cfg(MODEL_OK "ctx = 2000000\n", DEV_OK, ""), ":3:", "ctx = '2000000': at most 1048576");
    expect_bad("prefill_order", cfg(MODEL_OK, DEV_OK, "[cloud]\nprefill_order = lifo\n"), ":11:",
               "prefill_order = 'lifo': expected one of fcfs|fair");
    expect_bad("bad enum", cfg(MODEL_OK, DEV_OK, "[transport]\nwire_dtype = fp8\n"), "wire_dtype = 'fp8'", "fp32|fp16|bf16");
    expect_bad("duplicate key", cfg(MODEL_OK, DEV_OK, "[split]\na = 1\na = 2\n"), ":12:", "duplicate key 'a'");
    expect_bad("duplicate section", cfg(MODEL_OK, DEV_OK, "[run]\nseed = 2\n[run]\n"), ":12:", "duplicate section [run]");
    expect_bad("bad bool", cfg(MODEL_OK, DEV_OK, "[transport]\nemulate_links = maybe\n"), "'maybe'", "on|off");
    expect_bad("bad float", cfg(MODEL_OK, DEV_OK "temp = 0.5.1\n", ""), ":10:", "temp = '0.5.1'");
    expect_bad("bad mode", cfg(MODEL_OK, DEV_OK, "[run]\nmode = lshape\n"), "mode = 'lshape'", "ushape");
    expect_bad("gamma too long", cfg(MODEL_OK, DEV_OK, "[hat]\ngamma = 17\n"), "gamma = '17'", "at most 16");
    expect_bad("gamma_min above max", cfg(MODEL_OK, DEV_OK, "[hat]\ngamma_min = 5\ngamma_max = 3\n"), "gamma_min",
               "above [hat] gamma_max = 3");
    expect_bad("gamma zero", cfg(MODEL_OK, DEV_OK, "[hat]\ngamma = 0\n"), "gamma = '0'", NULL);
    expect_bad("unknown hat key", cfg(MODEL_OK, DEV_OK, "[hat]\ndraft = 3\n"), "unknown key 'draft' in [hat]", NULL);
    expect_bad("bad scheme", cfg(MODEL_OK, DEV_OK, "[cloud]\nscheme = sharded\n"), "scheme = 'sharded'", "replica");
    expect_bad("negative seed", cfg(MODEL_OK, DEV_OK, "[run]\nseed = -1\n"), ":11:", "seed = '-1'");
    expect_bad("malformed line", cfg(MODEL_OK, DEV_OK, "[run]\njust some words\n"), ":11:", "key = value");
    expect_bad("unterminated quote", cfg(MODEL_OK, DEV_OK, "[device.0]\nprompt = \"open\n"), ":11:", "unterminated");
    expect_bad("key outside a section", "count = 2\n[model]\npath = m.gguf\n", ":1:", "before any [section]");
    expect_bad("empty value", cfg(MODEL_OK, DEV_OK, "[run]\ntrace =   # nothing\n"), ":11:", "no value for 'trace'");
    expect_bad("device.x section", cfg(MODEL_OK, DEV_OK, "[device.x]\nlink = fast\n"), ":10:", "[device.x]");
    /* required keys and ranges */
    expect_bad("missing model path", cfg("ctx = 64\n", DEV_OK, ""), "[model] path", NULL);
    expect_bad("missing count", cfg(MODEL_OK, "prompt = hi\n", ""), "[devices] count", NULL);
    expect_bad("count 0", cfg(MODEL_OK, "count = 0\nprompt = hi\n", ""), ":7:", "count = '0'");
    expect_bad("device.N out of range", cfg(MODEL_OK, DEV_OK, "[device.2]\nmax_tokens = 3\n"), ":10:", "[device.2]");
    expect_bad("device.-1", cfg(MODEL_OK, DEV_OK, "[device.-1]\nmax_tokens = 3\n"), ":10:", "out of range");
    expect_bad("chunk_tokens 1", cfg(MODEL_OK, DEV_OK, "[transport]\nchunk_tokens = 1\n"), "chunk_tokens = '1'", ">= 2");
    expect_bad("inflight 0", cfg(MODEL_OK, DEV_OK, "[transport]\ninflight = 0\n"), "inflight = '0'", ">= 1");
    expect_bad("chunking sometimes", cfg(MODEL_OK, DEV_OK, "[transport]\nchunking = sometimes\n"), ":11:",
               "chunking = 'sometimes'");
    expect_bad("device chunking", cfg(MODEL_OK, DEV_OK, "[device.1]\nchunking = 16\n"), ":11:", "off|fixed|dynamic");
    expect_bad("negative max_stall_ms", cfg(MODEL_OK, DEV_OK, "[transport]\nmax_stall_ms = -5\n"), ":11:",
               "max_stall_ms = '-5'");
    expect_bad("dynamic cloud-only", cfg(MODEL_OK, DEV_OK, "[run]\nmode = cloud-only\n[transport]\nchunking = dynamic\n"),
               ":13:", "cloud-only");
    expect_bad("ctx 8", cfg("path = m.gguf\nctx = 8\n", DEV_OK, ""), "ctx = '8'", ">= 16");
    expect_bad("threads 0", cfg("path = m.gguf\ncloud_threads = 0\n", DEV_OK, ""), "cloud_threads = '0'", NULL);
    expect_bad("ranks 0", cfg(MODEL_OK, DEV_OK, "[cloud]\nranks = 0\n"), "ranks = '0'", NULL);
    expect_bad("max_batch < chunk", cfg(MODEL_OK, DEV_OK, "[cloud]\nmax_batch_tokens = 8\n[transport]\nchunk_tokens = 16\n"),
               "max_batch_tokens = '8'", "chunk_tokens = 16");
    expect_bad("max_batch default < chunk", cfg(MODEL_OK, DEV_OK, "[transport]\nchunk_tokens = 300\n"),
               "max_batch_tokens (default)", "300");
    expect_bad("top_p 0", cfg(MODEL_OK, DEV_OK, "[device.1]\ntop_p = 0\n"), ":11:", "top_p = '0'");
    expect_bad("top_p 1.5", cfg(MODEL_OK, DEV_OK "top_p = 1.5\n", ""), "top_p = '1.5'", "[1e-06, 1]");
    expect_bad("temp < 0", cfg(MODEL_OK, DEV_OK, "[device.0]\ntemp = -0.1\n"), "temp = '-0.1'", NULL);
    expect_bad("max_tokens 0", cfg(MODEL_OK, DEV_OK, "[device.1]\nmax_tokens = 0\n"), "[device.1] max_tokens = '0'", NULL);
    expect_bad("start_s < 0", cfg(MODEL_OK, DEV_OK, "[device.0]\nstart_s = -1\n"), "start_s = '-1'", NULL);
    expect_bad("fault device", cfg(MODEL_OK, DEV_OK, "[fault]\nkind = token_ids\ndevice = 2\n"), "device = '2'", "[0, 2)");
    expect_bad("fault kind", cfg(MODEL_OK, DEV_OK, "[fault]\nkind = gremlins\n"), "kind = 'gremlins'", "bad_checksum");
    /* profiles and prompts */
    expect_bad("unknown link profile", cfg(MODEL_OK, "count = 2\nlink = carrier-pigeon\nprompt = hi\n", ""),
               "link = 'carrier-pigeon'", "known in");
    expect_bad("unknown link lists names", cfg(MODEL_OK, "count = 2\nlink = carrier-pigeon\nprompt = hi\n", ""),
               "fast, slow", NULL);
    expect_bad("default link unknown", cfg(MODEL_OK, "count = 2\nprompt = hi\n", ""), "link (default)", "fast, slow");
    expect_bad("unknown compute profile", cfg(MODEL_OK, DEV_OK, "[device.1]\ncompute = gpu9000\n"),
               "compute = 'gpu9000'", "boardA, none");
    snprintf(text, sizeof text, "[model]\npath = m\n[profiles]\nlinks = /nonexistent/hat/links.ini\ndevices = %s\n"
             "[devices]\ncount = 1\nprompt = hi\n", devices_path);
    expect_bad("missing links file", text, "/nonexistent/hat/links.ini", NULL);
    snprintf(text, sizeof text, "[model]\npath = m\n[profiles]\nlinks = %s\ndevices = /nonexistent/hat/dev.ini\n"
             "[devices]\ncount = 1\nlink = fast\nprompt = hi\n", links_path);
    expect_bad("missing devices file", text, "/nonexistent/hat/dev.ini", NULL);
    expect_bad("missing prompts file", cfg(MODEL_OK, "count = 2\nlink = fast\nprompts = /nonexistent/hat/p.txt\n", ""),
               "/nonexistent/hat/p.txt", NULL);
    expect_bad("no prompt", cfg(MODEL_OK, "count = 2\nlink = fast\n", ""), "device 0 has no prompt", NULL);
    char bad_prompts[64];
    snprintf(bad_prompts, sizeof bad_prompts, "count = 2\nlink = fast\nprompts = %s\n", tmp_file("\n   \n"));
    expect_bad("empty prompts file", cfg(MODEL_OK, bad_prompts, ""), "no prompts", NULL);
    const char *bad_links[][3] = {
        {"[x]\nup_mbps = 0\ndown_mbps = 1\nlatency_ms = 1\nsource = s\n", ":2:", "up_mbps = '0'"},
        {"[x]\nup_mbps = 1\ndown_mbps = 1\nlatency_ms = -1\nsource = s\n", ":4:", "latency_ms = '-1'"},
        {"[x]\nup_mbps = 1\ndown_mbps = 1\nlatency_ms = 1\njitter_ms = -2\nsource = s\n", ":5:", "jitter_ms = '-2'"},
        {"[x]\nup_mbps = 1\ndown_mbps = 1\nlatency_ms = 1\njitter = gaussian\nsource = s\n", ":5:", "none|normal|exponential"},
        {"[x]\nup_mbps = 1\ndown_mbps = 1\nlatency_ms = 1\nbandwidth = 3\nsource = s\n", ":5:", "unknown key 'bandwidth'"},
        {"[x]\nup_mbps = 1\ndown_mbps = 1\nsource = s\n", ":1:", "'latency_ms'"},
        {"# nothing\n", "no profiles", NULL},
    };
    for (size_t i = 0; i < sizeof bad_links / sizeof bad_links[0]; i++) {
        const char *lp = tmp_file(bad_links[i][0]);
        char want[96];
        snprintf(want, sizeof want, "%s%s", lp, bad_links[i][1]);
        snprintf(text, sizeof text, "[model]\npath = m\n[profiles]\nlinks = %s\ndevices = %s\n[devices]\ncount = 1\n"
                 "link = x\nprompt = hi\n", lp, devices_path);
        expect_bad("bad links file", text, bad_links[i][1][0] == ':' ? want : bad_links[i][1], bad_links[i][2]);
    }
    const char *bad_devs[][2] = {
        {"[b]\nmem_bw_gbs = 10\nefficiency = 1.5\ntflops = 1\nflops_efficiency = 1\nmem_gb = 1\nsource = s\n",
         "efficiency = '1.5'"},
        {"[b]\nmem_bw_gbs = 0\nefficiency = 0.5\ntflops = 1\nflops_efficiency = 1\nmem_gb = 1\nsource = s\n",
         "mem_bw_gbs = '0'"},
        {"[none]\nmem_bw_gbs = 1\nefficiency = 0.5\ntflops = 1\nflops_efficiency = 1\nmem_gb = 1\nsource = s\n",
         "[none] is reserved"},
        {"[b]\nmem_bw_gbs = 1\nefficiency = 0.5\ntflops = 1\nsource = s\n", "lacks the required key 'flops_efficiency'"},
    };
    for (size_t i = 0; i < sizeof bad_devs / sizeof bad_devs[0]; i++) {
        snprintf(text, sizeof text, "[model]\npath = m\n[profiles]\nlinks = %s\ndevices = %s\n[devices]\ncount = 1\n"
                 "link = fast\nprompt = hi\n", links_path, tmp_file(bad_devs[i][0]));
        expect_bad("bad devices file", text, bad_devs[i][1], NULL);
    }
    hat_config c;
    char err[HAT_ERRLEN] = "";
    EXPECT(config_load(&c, "/nonexistent/hat/run.ini", err, sizeof err) == HAT_ERR_IO && strstr(err, "/nonexistent/hat/run.ini"),
           "missing config file: %s", err);
    config_free(&c);

    /* facts from outside the file: config_validate */
    expect_invalid("world size mismatch", cfg(MODEL_OK, DEV_OK, ""), 4, 30, 8192, "world size is 4",
                   "ranks 0..n_cloud-1 are cloud, the rest devices");
    expect_invalid("world size mismatch numbers", cfg(MODEL_OK, DEV_OK, ""), 4, 30, 8192, "needs 3", NULL);
    expect_invalid("a + b >= n_layer", cfg(MODEL_OK, DEV_OK, ""), 3, 4, 8192, "a=2 b=2", "4 layers");
    expect_invalid("a = 0", cfg(MODEL_OK, DEV_OK, "[split]\na = 0\n"), 3, 30, 8192, "a=0", "1 <= a");
    expect_invalid("b = -1", cfg(MODEL_OK, DEV_OK, "[split]\nb = -1\n"), 3, 30, 8192, "b=-1", NULL);
    expect_invalid("ctx > n_ctx_train", cfg("path = m.gguf\nctx = 4096\n", DEV_OK, ""), 3, 30, 2048, "4096", "2048");
}

/* [cloud] compute, [run] timing_shape, their files; the mapped split and memory (timing_run.h) */
static void test_timing(void) {
    char text[2048], err[HAT_ERRLEN] = "";
    const char *srv = tmp_file(SERVERS), *shp = tmp_file(SHAPES);
#define TCFG(extra) (snprintf(text, sizeof text, "[model]\npath = m.gguf\n[profiles]\nlinks = %s\ndevices = %s\n" \
                              "servers = %s\nshapes = %s\n[devices]\ncount = 2\nlink = fast\ncompute = boardA\n"  \
                              "prompt = hi\n%s", links_path, devices_path, srv, shp, extra), text)
    hat_config c;
    int rc = config_load(&c, tmp_file(TCFG("[cloud]\ncompute = box\n[run]\ntiming_shape = big\nmax_distorted = 0.1\n")),
                         err, sizeof err);
    EXPECT(rc == HAT_OK && !strcmp(c.cloud_compute.name, "box") && c.cloud_compute.gpus == 8 &&
           !strcmp(c.shape_name, "big") && c.shape.layers == 32 && c.max_distorted == 0.1 &&
           c.dev[0].compute.flops_efficiency == 0.5 && c.dev[0].compute.mem_gb == 8, "timing keys load: %s", err);
    if (rc == HAT_OK) {   /* the resolved text loads back to the same values */
        EXPECT(strstr(c.resolved, "compute = box") && strstr(c.resolved, "timing_shape = big") &&
               strstr(c.resolved, "# server box") && strstr(c.resolved, "# shape big"), "resolved timing keys");
        hat_config c2;
        const int rc2 = config_load(&c2, tmp_file(c.resolved), err, sizeof err);
        EXPECT(rc2 == HAT_OK && !strcmp(c2.cloud_compute.name, "box") && c2.shape.hidden == 4096, "resolved reloads: %s", err);
        if (rc2 == HAT_OK) config_free(&c2);
        config_free(&c);
    }
    rc = config_load(&c, tmp_file(TCFG("")), err, sizeof err);
    EXPECT(rc == HAT_OK && !strcmp(c.cloud_compute.name, "none") && !strcmp(c.shape_name, "none") &&
           c.max_distorted == 0.01, "timing defaults: %s", err);
    if (rc == HAT_OK) config_free(&c);
    expect_bad("unknown server profile", TCFG("[cloud]\ncompute = dgx9\n"), "compute = 'dgx9'", "box, tiny, none");
    expect_bad("unknown shape", TCFG("[run]\ntiming_shape = gpt-5\n"), "timing_shape = 'gpt-5'", "big, shallow, none");
    expect_bad("max_distorted 2", TCFG("[run]\nmax_distorted = 2\n"), "max_distorted = '2'", NULL);
    snprintf(text, sizeof text, "[model]\npath = m\n[profiles]\nlinks = %s\ndevices = %s\nservers = /nonexistent/s.ini\n"
             "[cloud]\ncompute = box\n[devices]\ncount = 1\nlink = fast\nprompt = hi\n", links_path, devices_path);
    expect_bad("missing servers file", text, "/nonexistent/s.ini", NULL);
    char bad_srv[1024];
    snprintf(bad_srv, sizeof bad_srv, "%s", SERVERS);
    *strstr(bad_srv, "gpus = 8\n") = '#';   /* [box] loses its gpus key */
    snprintf(text, sizeof text, "[model]\npath = m\n[profiles]\nlinks = %s\ndevices = %s\nservers = %s\n"
             "[cloud]\ncompute = box\n[devices]\ncount = 1\nlink = fast\nprompt = hi\n", links_path, devices_path,
             tmp_file(bad_srv));
    expect_bad("server profile missing a key", text, "lacks the required key 'gpus'", NULL);
    /* the split on the shape: 2 of 30 layers maps to 0 of 4; memory of the profiles */
    rc = config_load(&c, tmp_file(TCFG("[run]\ntiming_shape = shallow\n")), err, sizeof err);
    EXPECT(rc == HAT_OK, "shallow shape loads: %s", err);
    config_free(&c);
#undef TCFG
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_config <source dir>\n");
        return 2;
    }
    links_path = tmp_file(LINKS);
    devices_path = tmp_file(DEVICES);
    prompts_path = tmp_file(PROMPTS);
    EXPECT(!strcmp(wire_dtype_name(WIRE_F16), "fp16") && wire_dtype_size(WIRE_F32) == 4 && wire_dtype_size(WIRE_BF16) == 2,
           "wire dtype names/sizes");
    EXPECT(!strcmp(fault_kind_name(FAULT_TRUNCATED), "truncated_message") && !strcmp(fault_kind_name(FAULT_NONE), "none"),
           "fault names");
    hat_config z;
    memset(&z, 0, sizeof z);
    config_free(&z);   /* safe on a zeroed struct */
    test_defaults();
    test_scale();
    test_full();
    test_jsonl();
    test_bad();
    test_timing();
    test_shipped(argv[1]);
    tmp_files_remove();
    return test_summary();
}
