/* run.c — `hat run --config FILE` under mpirun: start-up checks agreed by every rank, the role
 * of each rank, and the end-of-run report written by rank 0.
 *
 * Start-up is a sequence of stages; after each one every rank calls comm_agree, so an error on
 * any rank (bad config, wrong rank count, missing model, prompt too long, trace exists) ends
 * every rank with exit status 1 and one message printed by rank 0, before any work starts and
 * without touching an existing trace.
 */
#include "run/run.h"
#include "run/roles.h"
#include "net/collective.h"

#include "core/build_info.h"
#include "net/comm.h"
#include "core/common.h"
#include "trace/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mpirun -np N hat run --config FILE.ini [--trace PATH] [--overwrite]\n"
            "  N must equal [cloud] ranks + [devices] count: ranks 0..ranks-1 are the cloud, the rest devices.\n"
            "  --trace PATH   write the HDF5 trace here (default: [run] trace of the config)\n"
            "  --overwrite    replace an existing trace file (otherwise refused: nothing already written is lost)\n");
}

static trace_file *g_trace;        /* rank 0: for the abort path */
static collector *g_col;
static void on_abort(const char *why) {
    if (!g_trace) return;
    if (g_col) collector_salvage(g_col);
    char buf[600];
    snprintf(buf, sizeof buf, "failed: %s", why ? why : "");
    trace_close_on_abort(g_trace, buf);
    g_trace = NULL;
}

/* tokens of device i's prompt (chat template when configured) */
static int build_prompt(run_ctx *r, const device_cfg *dc, char *err, size_t errlen) {
    char *text;
    size_t len;
    if (dc->chat) {
        size_t cap = strlen(dc->prompt) + 4096;
        text = xmalloc(cap);
        int rc = tokenizer_chat_format(r->tok, NULL, dc->prompt, text, cap, &len, err, errlen);
        if (rc) { free(text); return rc; }
    } else {
        len = strlen(dc->prompt);
        text = xmalloc(len + 1);
        memcpy(text, dc->prompt, len + 1);
    }
    const int add_bos = tokenizer_add_bos(r->tok), cap = (int)len + 8;
    r->prompt = xmalloc((size_t)cap * sizeof(int32_t));
    if (add_bos) r->prompt[0] = tokenizer_bos(r->tok);
    int n = 0, rc = tokenizer_encode(r->tok, text, len, dc->chat, r->prompt + add_bos, cap - add_bos, &n, err, errlen);
    free(text);
    if (rc) return rc;
    r->n_prompt = n + add_bos;
    if (r->n_prompt == 0) return hat_err(err, errlen, HAT_ERR_ARG, "device %d: the prompt is empty", r->device);
    if (r->n_prompt + dc->max_tokens > r->cfg.ctx)
        return hat_err(err, errlen, HAT_ERR_ARG, "device %d: prompt (%d tokens) + max_tokens %d exceed [model] ctx %d",
                       r->device, r->n_prompt, dc->max_tokens, r->cfg.ctx);
    return HAT_OK;
}

/* the plan for the log and the trace: the split, or in the cloud-only baseline the whole model
 * on the cloud (the configured a/b are not used there) */
static void describe_plan(const run_ctx *r, char *buf, size_t len) {
    partition_describe(&r->part, buf, len);
    if (r->cfg.run_mode != RUN_CLOUD_ONLY) return;
    const char *ranks = strstr(buf, "ranks:");
    char tail[512];
    snprintf(tail, sizeof tail, "%s", ranks ? ranks : "");
    snprintf(buf, len,
             "layers %d, cloud-only (split a=%d b=%d not used)\n"
             "device: no layers: sends its prompt's token ids, receives the generated ones\n"
             "cloud:  embedding + layers [0,%d) + final norm + LM head, sampling; scheme replica\n%s",
             r->mc.n_layer, r->cfg.a, r->cfg.b, r->mc.n_layer, tail);
}

static int stage(int rc, char *err, const char *what) {
    int failing;
    rc = comm_agree(rc, err, HAT_ERRLEN, &failing);
    if (rc && comm_get()->rank == 0) fprintf(stderr, "hat run: error (%s, rank %d): %s\n", what, failing, err);
    return rc;
}

static void set_attrs(run_ctx *r, trace_file *tf, const char *trace_path) {
    char buf[1024];
    trace_set_attr_str(tf, "hat_version", HAT_VERSION);
    trace_set_attr_str(tf, "git_hash", HAT_GIT_HASH);
    trace_set_attr_str(tf, "compiler", HAT_C_COMPILER);
    trace_set_attr_str(tf, "build_type", HAT_BUILD_TYPE);
    trace_set_attr_str(tf, "c_flags", HAT_C_FLAGS);
    snprintf(buf, sizeof buf, "cpu backend (quantised weights, OpenMP), mpi, hdf5, gsl, openblas%s%s",
#if defined(__AVX2__)
             ", avx2",
#else
             "",
#endif
#if defined(__AVX512VNNI__) || defined(__AVXVNNI__)
             ", vnni"
#else
             ""
#endif
    );
    trace_set_attr_str(tf, "features", buf);
    trace_set_attr_str(tf, "config", r->cfg.resolved ? r->cfg.resolved : "");
    trace_set_attr_str(tf, "config_path", r->cfg.path);
    char part[1024];
    describe_plan(r, part, sizeof part);
    trace_set_attr_str(tf, "partition", part);
    trace_set_attr_str(tf, "model_path", r->cfg.model_path);
    gguf_str gs = {0};
    char name[256] = "";
    if (gguf_get_str(r->gf, "general.name", &gs, NULL, 0) == HAT_OK)
        snprintf(name, sizeof name, "%.*s", (int)(gs.len < 255 ? gs.len : 255), gs.ptr);
    trace_set_attr_str(tf, "model_name", name);
    struct stat sb;
    long long fsize = stat(r->cfg.model_path, &sb) == 0 ? (long long)sb.st_size : -1;
    snprintf(buf, sizeof buf, "architecture llama, layers %d, dim %d, heads %d/%d, ffn %d, vocab %d, file bytes %lld",
             r->mc.n_layer, r->mc.dim, r->mc.n_head, r->mc.n_head_kv, r->mc.ffn_dim, r->mc.n_vocab, fsize);
    trace_set_attr_str(tf, "model_identity", buf);
    time_t now = time(NULL);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    trace_set_attr_str(tf, "created_utc", buf);
    trace_set_attr_str(tf, "trace_path", trace_path);
    trace_set_attr_str(tf, "privacy", r->cfg.run_mode == RUN_CLOUD_ONLY
                                          ? "NOT private: token ids are sent to the cloud (cloud-only baseline)"
                                          : "private: only hidden states leave the device");
    trace_set_attr_int(tf, "n_ranks", r->size);
    trace_set_attr_int(tf, "n_devices", r->cfg.n_devices);
    trace_set_attr_int(tf, "n_cloud", r->cfg.n_cloud);
    trace_set_attr_int(tf, "cloud_tp", r->cfg.tp);
    trace_set_attr_int(tf, "split_a", r->cfg.a);
    trace_set_attr_int(tf, "split_b", r->cfg.b);
    trace_set_attr_int(tf, "n_layer", r->mc.n_layer);
    trace_set_attr_str(tf, "mode", r->cfg.mode);
    if (r->be) {   /* rank 0 is a cloud rank: its backend (every cloud rank opens the same kind) */
        char bdesc[700];
        snprintf(bdesc, sizeof bdesc, "%s%s%s", r->be->desc, r->backend_note[0] ? "; " : "", r->backend_note);
        trace_set_attr_str(tf, "cloud_backend", bdesc);
    } else {
        trace_set_attr_str(tf, "cloud_backend", r->cfg.run_mode == RUN_CLOUD_ONLY ? "cpu (cloud-only: whole model on the CPU engine)" : "none");
    }
    if (r->ad) {
        char ad[512];
        adapter_describe(r->ad, ad, sizeof ad);
        trace_set_attr_str(tf, "adapter", ad);
    } else {
        trace_set_attr_str(tf, "adapter", "none");
    }
}

/* rank 0, end of run: report from every record, printed and stored */
static void finish_root(run_ctx *r, trace_file *tf) {
    collector *c = &r->col;
    char err[HAT_ERRLEN];
    report rep;
    int rc = report_build(&rep, r->cfg.n_devices, (const trace_token *)c->all[TRACE_TOKENS], c->n_all[TRACE_TOKENS],
                          (const trace_device *)c->all[TRACE_DEVICES], c->n_all[TRACE_DEVICES],
                          (const trace_batch *)c->all[TRACE_BATCHES], c->n_all[TRACE_BATCHES], err, sizeof err);
    CHECK(rc == HAT_OK, "report: %s", err);
    /* each device's text, decoded here from the measurement plane's token records */
    if (r->tok) {
        const trace_token *tt = (const trace_token *)c->all[TRACE_TOKENS];
        for (int dv = 0; dv < r->cfg.n_devices; dv++) {
            printf("device %d: ", dv);
            char piece[1024];
            tokenizer_decoder dec;
            tokenizer_decoder_init(&dec);
            for (uint32_t idx = 0;; idx++) {
                size_t k;
                for (k = 0; k < c->n_all[TRACE_TOKENS]; k++)
                    if ((int)tt[k].device == dv && tt[k].index == idx) break;
                if (k == c->n_all[TRACE_TOKENS]) break;
                int len = tokenizer_decoder_push(&dec, r->tok, tt[k].token, piece, sizeof piece);
                for (int i = 0; i < len; i++) putchar(piece[i] == '\n' ? ' ' : piece[i]);
            }
            int len = tokenizer_decoder_flush(&dec, piece, sizeof piece);
            for (int i = 0; i < len; i++) putchar(piece[i] == '\n' ? ' ' : piece[i]);
            putchar('\n');
        }
    }
    report_print(&rep, stdout);
    fflush(stdout);
    char cost[160];
    collector_cost_describe(c, cost, sizeof cost);
    fprintf(stderr, "trace overhead (rank 0 serving loop): %s\n", cost);
    trace_set_attr_str(tf, "trace_overhead", cost);
    rc = trace_write_report(tf, &rep);
    CHECK(rc == HAT_OK, "trace: writing the report failed");
    report_free(&rep);
}

int cli_run(int argc, char **argv) {
    comm_init(&argc, &argv);
    const comm_info *ci = comm_get();
    run_ctx *r = xcalloc(1, sizeof *r);
    r->rank = ci->rank;
    r->size = ci->size;
    const char *cfg_path = NULL, *trace_path = NULL;
    int overwrite = 0, rc = HAT_OK;
    char err[HAT_ERRLEN] = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) cfg_path = argv[++i];
        else if (!strcmp(argv[i], "--trace") && i + 1 < argc) trace_path = argv[++i];
        else if (!strcmp(argv[i], "--overwrite")) overwrite = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { if (r->rank == 0) usage(stdout); comm_finalize(); return 0; }
        else { rc = hat_err(err, sizeof err, HAT_ERR_ARG, "unknown or incomplete option '%s'", argv[i]); break; }
    }
    if (!rc && !cfg_path) rc = hat_err(err, sizeof err, HAT_ERR_ARG, "--config FILE is required");
    if (stage(rc, err, "arguments")) { if (r->rank == 0) usage(stderr); goto fail; }

    rc = config_load(&r->cfg, cfg_path, err, sizeof err);
    if (stage(rc, err, "config")) goto fail;
    if (trace_path) snprintf(r->cfg.trace, sizeof r->cfg.trace, "%s", trace_path);

    rc = gguf_open(&r->gf, r->cfg.model_path, err, sizeof err);
    if (!rc) rc = model_read_config(r->gf, &r->mc, err, sizeof err);
    if (stage(rc, err, "model")) goto fail;

    rc = config_validate(&r->cfg, r->size, r->mc.n_layer, r->mc.n_ctx_train, err, sizeof err);
    if (stage(rc, err, "config")) goto fail;
    r->part = (partition){r->mc.n_layer, r->cfg.a, r->cfg.b, r->cfg.n_cloud, r->cfg.n_devices, r->cfg.tp};
    r->role = partition_role(&r->part, r->rank);
    char role[32];
    if (r->role == ROLE_DEVICE) {
        r->device = partition_device_of_rank(&r->part, r->rank);
        snprintf(role, sizeof role, "device %d", r->device);
    } else {
        snprintf(role, sizeof role, "cloud %d", r->rank);
    }
    comm_set_role(role);

    /* devices tokenize their prompt; rank 0 holds a tokenizer to print the devices' texts; in the
     * cloud-only baseline every cloud rank needs one too (it decides the end of a session at EOG) */
    if (r->role == ROLE_DEVICE || r->rank == 0 || r->cfg.run_mode == RUN_CLOUD_ONLY)
        rc = tokenizer_init(&r->tok, r->gf, err, sizeof err);
    if (!rc && r->role == ROLE_DEVICE) rc = build_prompt(r, &r->cfg.dev[r->device], err, sizeof err);
    if (stage(rc, err, "prompt")) goto fail;

    /* HAT: the draft adapter must have been fitted for this model file and this split */
    if (r->cfg.run_mode == RUN_HAT && (r->role == ROLE_DEVICE || r->rank == 0)) {
        if (!strcmp(r->cfg.adapter_path, "identity")) r->ad = adapter_identity(r->mc.dim, r->cfg.a, r->cfg.b);
        else rc = adapter_load(&r->ad, r->cfg.adapter_path, r->gf, r->mc.n_layer, r->mc.dim, r->cfg.a, r->cfg.b, err, sizeof err);
    }
    if (stage(rc, err, "adapter")) goto fail;

    /* tensor-parallel groups of cloud ranks (every rank takes part in the split) */
    r->tp = (tp_comm){.size = 1};
    if (r->cfg.tp > 1)
        collective_group_open(&r->tp, r->role == ROLE_CLOUD ? partition_group_of_rank(&r->part, r->rank) : -1, r->rank,
                              r->cfg.tp_mode);
    /* cloud ranks: the middle submodel on the backend the config asks for (cpu, cuda, auto) */
    if (r->role == ROLE_CLOUD && r->cfg.run_mode != RUN_CLOUD_ONLY) {
        const int L = r->mc.n_layer;
        rc = model_load_file(&r->cloud_model, r->gf, &(model_part){.l0 = r->cfg.a, .l1 = L - r->cfg.b}, err, sizeof err);
        if (!rc) {
            const int partners = partition_n_served(&r->part, partition_group_of_rank(&r->part, r->rank));
            const int max_tok = run_msg_max_tok(&r->cfg) > r->cfg.max_batch_tokens ? run_msg_max_tok(&r->cfg)
                                                                                   : r->cfg.max_batch_tokens;
            backend_desc bd = {.kind = (backend_kind)r->cfg.backend, .m = r->cloud_model, .l0 = r->cfg.a,
                               .l1 = L - r->cfg.b, .n_slots = partners > 0 ? partners : 1, .max_tok = max_tok,
                               .n_ctx = r->cfg.ctx, .n_threads = r->cfg.cloud_threads, .gpu = r->cfg.gpu,
                               .local_rank = comm_get()->local_rank, .dtype = (backend_dtype)r->cfg.gpu_dtype, .tp = r->tp, .nccl = 1,
                               .no_graphs = !r->cfg.gpu_graphs, .gemv = r->cfg.gpu_gemv};
            /* a tensor-parallel group runs on one kind of backend: CUDA only if every rank of it has a GPU
             * (agreed before any rank opens one: the CUDA backend's set-up is collective over the group) */
            char group_note[160] = "";
            if (tp_active(&r->tp) && bd.kind != BACKEND_CPU) {
                char why[256];
                int n_gpu = 0, ok = backend_cuda_available(&n_gpu, why, sizeof why) == 0, all = 1;
                int *oks = xcalloc((size_t)r->tp.size, sizeof *oks);
                rc = r->tp.allgather(r->tp.ctx, &ok, oks, sizeof ok, err, sizeof err);
                for (int i = 0; i < r->tp.size; i++) all &= oks[i];
                free(oks);
                if (!rc && !all && bd.kind == BACKEND_CUDA)
                    snprintf(group_note, sizeof group_note, "backend cuda requested but not every rank of tensor-parallel "
                             "group %d has a GPU: the group runs on the CPU", partition_group_of_rank(&r->part, r->rank));
                if (!all) bd.kind = BACKEND_CPU;
            }
            if (!rc) rc = backend_open(&r->be, &bd, r->backend_note, sizeof r->backend_note, err, sizeof err);
            if (!rc && group_note[0]) snprintf(r->backend_note, sizeof r->backend_note, "%s", group_note);
        }
    }
    if (stage(rc, err, "backend")) goto fail;

    trace_file *tf = NULL;
    if (r->rank == 0) {
        rc = trace_create(&tf, r->cfg.trace, overwrite, err, sizeof err);
        if (!rc) set_attrs(r, tf, r->cfg.trace);
    }
    if (stage(rc, err, "trace")) goto fail;
    collector_init(&r->col, r->rank == 0, tf, 256);
    if (r->rank == 0) {
        g_trace = tf;
        g_col = &r->col;
        comm_on_abort(on_abort);
        char part[1024];
        describe_plan(r, part, sizeof part);
        printf("hat run: %s, mode %s, %d ranks, wire %s, chunk %d tokens, links %s\n%s\n", r->cfg.path, r->cfg.mode,
               r->size, wire_dtype_name(r->cfg.wire), r->cfg.chunk_tokens,
               r->cfg.emulate_links ? "emulated" : "not emulated", part);
        if (r->be) printf("cloud backend: %s\n", r->be->desc);
        if (r->backend_note[0]) printf("cloud backend: note: %s\n", r->backend_note);
        if (r->ad) {
            char ad[512];
            adapter_describe(r->ad, ad, sizeof ad);
            if (r->cfg.gamma_adaptive) printf("hat: adaptive draft length in [%d, %d], adapter %s\n", r->cfg.gamma_min, r->cfg.gamma_max, ad);
            else printf("hat: draft length %d, adapter %s\n", r->cfg.gamma, ad);
        }
        fflush(stdout);
    }

    comm_barrier();
    comm_sync_clock();
    const int cloud_only = r->cfg.run_mode == RUN_CLOUD_ONLY;
    if (r->role == ROLE_DEVICE) {
        if (cloud_only) role_cloudonly_device_main(r);
        else role_device_main(r);
    } else {
        if (cloud_only) role_cloudonly_cloud_main(r);
        else role_cloud_main(r);
        collector_finish(&r->col);
        if (r->rank == 0) collector_wait_all(&r->col, r->size);
    }
    if (r->rank == 0) {
        finish_root(r, tf);
        g_trace = NULL;
        rc = trace_close(tf, "complete");
        CHECK(rc == HAT_OK, "trace: closing %s failed", r->cfg.trace);
        printf("trace: %s\n", r->cfg.trace);
    }
    collector_free(&r->col);
    comm_barrier();
    rc = 0;
    goto done;
fail:
    rc = 1;
done:
    free(r->prompt);
    adapter_free(r->ad);
    backend_free(r->be);
    model_free(r->cloud_model);
    collective_group_close(&r->tp);
    if (r->tok) tokenizer_free(r->tok);
    if (r->gf) gguf_close(r->gf);
    config_free(&r->cfg);
    free(r);
    comm_finalize();
    return rc;
}
