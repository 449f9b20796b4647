/* run.c — `hat run` under mpirun (its command line: cli/cli_run.c): start-up checks agreed by
 * every rank, the role of each rank, and the end-of-run report written by rank 0.
 *
 * Start-up is a sequence of stages; after each one every rank calls comm_agree, so an error on
 * any rank (refused command line, bad config, wrong rank count, missing model, prompt too long,
 * trace exists) ends every rank with exit status 2 (command line) or 1 (the rest) and one
 * message printed by rank 0, before any work starts and without touching an existing trace.
 */
#include "run/run.h"
#include "run/mem_check.h"
#include "run/roles.h"
#include "engine/prompt.h"
#include "run/cloud_cost.h"
#include "net/collective.h"

#include "core/build_info.h"
#include "net/comm.h"
#include "net/transport.h"
#include "core/common.h"
#include "trace/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static trace_file *g_trace;        /* rank 0: for the abort path */
static collector *g_col;
static int g_n_devices;

/* rank 0: the report of the records the collector kept (err: HAT_ERRLEN) */
static int collected_report(const collector *c, int n_devices, report *rep, char *err) {
    return report_build(rep, n_devices, (const trace_token *)c->all[TRACE_TOKENS], c->n_all[TRACE_TOKENS],
                        (const trace_device *)c->all[TRACE_DEVICES], c->n_all[TRACE_DEVICES],
                        (const trace_batch *)c->all[TRACE_BATCHES], c->n_all[TRACE_BATCHES], err, HAT_ERRLEN);
}

/* rank 0, abort path, after the salvage: a run that fails with every device accounted for (each
 * has its /devices row: finished, or lost and closed by its cloud rank) still gets its report */
static void abort_report(void) {
    if (g_col->n_all[TRACE_DEVICES] != (size_t)g_n_devices) return;   /* device rows are unique per device (report_build checks) */
    char err[HAT_ERRLEN];
    report rep;
    if (collected_report(g_col, g_n_devices, &rep, err) != HAT_OK) {
        fprintf(stderr, "hat run: no report for the failed run: %s\n", err);
        return;
    }
    report_print(&rep, stdout);
    fflush(stdout);
    if (trace_write_summary(g_trace, rep.rows, rep.n_rows, rep.hist, rep.n_hist) != HAT_OK)
        fprintf(stderr, "hat run: writing the failed run's /summary failed\n");
    report_free(&rep);
}

static void on_abort(const char *why) {
    if (g_col && !g_col->is_root) {   /* tell rank 0, which fails the run with this reason */
        collector_notify_abort(g_col, why);
        return;
    }
    if (!g_trace) return;
    if (g_col) {
        collector_salvage(g_col);
        abort_report();
    }
    char buf[600];
    snprintf(buf, sizeof buf, "failed: %s", why ? why : "");
    trace_set_attr_double(g_trace, "failed_at_s", comm_now());
    trace_close_on_abort(g_trace, buf);
    g_trace = NULL;
}

/* tokens of device i's prompt (chat template when configured) */
static int build_prompt(run_ctx *r, const device_cfg *dc, char *err, size_t errlen) {
    int rc = prompt_tokenize(r->tok, NULL, dc->prompt, dc->chat, &r->prompt, &r->n_prompt, err, errlen);
    if (rc) return rc;
    if (r->n_prompt == 0) return hat_err(err, errlen, HAT_ERR_ARG, "device %d: the prompt is empty", r->device);
    if (dc->max_tokens > r->cfg.ctx - r->n_prompt)   /* n_prompt + max_tokens could overflow */
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
    hat_check_interrupt();   /* SIGINT/SIGTERM during the start-up: stop at this stage, no trace begun */
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
    run_timing_describe(&r->tm, buf, sizeof buf);
    trace_set_attr_str(tf, "timing_shape", buf);
    trace_set_attr_int(tf, "timing_split_a", r->tm.a);
    trace_set_attr_int(tf, "timing_split_b", r->tm.b);
    trace_set_attr_int(tf, "timing_layers", r->tm.L);
    trace_set_attr_int(tf, "timing_hidden", r->tm.shape.hidden);
    trace_set_attr_str(tf, "cloud_compute", r->cfg.cloud_compute.name);
    snprintf(buf, sizeof buf, "%.17g", r->cfg.time_scale);
    trace_set_attr_str(tf, "time_scale", buf);
    if (r->be) {   /* rank 0 is a cloud rank: its backend (every cloud rank opens the same kind) */
        char bdesc[700];
        snprintf(bdesc, sizeof bdesc, "%s%s%s", r->be->desc, r->backend_note[0] ? "; " : "", r->backend_note);
        trace_set_attr_str(tf, "cloud_backend", bdesc);
    } else {
        trace_set_attr_str(tf, "cloud_backend", "none");
    }
    if (r->ad) {
        char ad[512];
        adapter_describe(r->ad, ad, sizeof ad);
        trace_set_attr_str(tf, "adapter", ad);
    } else {
        trace_set_attr_str(tf, "adapter", "none");
    }
}

/* rank 0, end of run: the prefill line of the summary, per chunking policy in use: devices,
 * chunks, mean chunk size; dynamic: the first plans' predicted TTFT against the measured one */
static void print_prefill(const run_ctx *r) {
    const collector *c = &r->col;
    const trace_device *dv = (const trace_device *)c->all[TRACE_DEVICES];
    for (int pol = CHUNK_OFF; pol <= CHUNK_DYNAMIC; pol++) {
        int n = 0, bound = 0;
        double chunks = 0, tokens = 0, pred = 0, meas = 0;
        for (size_t i = 0; i < c->n_all[TRACE_DEVICES]; i++) {
            if ((int)dv[i].chunking != pol) continue;
            n++;
            chunks += dv[i].chunks;
            tokens += dv[i].prompt_tokens;
            bound += (int)dv[i].stall_bound;
            pred += dv[i].ttft_pred_s;
            meas += dv[i].t_first - dv[i].t_request;
        }
        if (!n) continue;
        printf("prefill: chunking %s", chunk_policy_names[pol]);
        if (pol == CHUNK_FIXED) printf(" %d", r->cfg.chunk_tokens);
        printf(", %d device%s, %.0f chunks, mean chunk %.1f tokens", n, n > 1 ? "s" : "", chunks,
               chunks > 0 ? tokens / chunks : 0.0);
        if (pol == CHUNK_DYNAMIC)
            printf("; TTFT predicted %.3f s, measured %.3f s (mean); max_stall_ms %g bound %d plans", pred / n,
                   meas / n, r->cfg.max_stall_ms, bound);
        printf("\n");
    }
    /* each cloud rank's pass-time model as its last pass had it (the /batches records) */
    const trace_batch *tb = (const trace_batch *)c->all[TRACE_BATCHES];
    for (int cr = 0; cr < r->size; cr++) {
        const trace_batch *last = NULL;
        for (size_t i = 0; i < c->n_all[TRACE_BATCHES]; i++)
            if ((int)tb[i].cloud_rank == cr && tb[i].fit_samples) last = &tb[i];
        if (last)
            printf("cloud %d pass time: %.3g s + %.3g s/token + %.3g s/attended position + %.3g s/token^2 (fit to %u "
                   "passes, rms residual %.1f %%%s)\n", cr, last->cost_c0, last->cost_c1, last->cost_c2, last->cost_c3,
                   last->fit_samples,
                   100 * last->fit_rms_rel, last->fit_clamped ? ", a coefficient clamped to 0" : "");
    }
}

/* rank 0, end of run: the distorted steps (real compute over the profile's prediction, so the
 * charged time is the host's, not the profile's) per device and per cloud rank; above [run]
 * max_distorted a warning on stderr. The line goes into the trace too (attribute timing_distorted). */
static void print_distorted(const run_ctx *r, trace_file *tf) {
    const collector *c = &r->col;
    const trace_device *dv = (const trace_device *)c->all[TRACE_DEVICES];
    const trace_batch *tb = (const trace_batch *)c->all[TRACE_BATCHES];
    char line[512];
    size_t n = 0;
    double worst = 0;
    int any = 0, worst_who = -1;
    uint64_t dx = 0, dn = 0;
    for (size_t i = 0; i < c->n_all[TRACE_DEVICES]; i++) {
        if (!hw_enabled(&r->cfg.dev[dv[i].device].compute)) continue;
        any = 1;
        dx += dv[i].profile_exceeded;
        dn += 2ull * dv[i].n_steps;   /* each step: the input and the output submodel's piece */
        const double f = dv[i].n_steps ? dv[i].profile_exceeded / (2.0 * dv[i].n_steps) : 0;
        if (f > worst) worst = f, worst_who = (int)dv[i].device;
    }
    if (!any && !hw_enabled(&r->cfg.cloud_compute)) return;   /* no profile: nothing is padded */
    n += (size_t)snprintf(line + n, sizeof line - n, "timing: distorted steps (real compute over the profile): ");
    if (any) n += (size_t)snprintf(line + n, sizeof line - n, "devices %llu of %llu pieces", (unsigned long long)dx,
                                   (unsigned long long)dn);
    else n += (size_t)snprintf(line + n, sizeof line - n, "devices unprofiled");
    for (int cr = 0; cr < r->size && n < sizeof line; cr++) {
        uint64_t x = 0, m = 0;
        for (size_t i = 0; i < c->n_all[TRACE_BATCHES]; i++)
            if ((int)tb[i].cloud_rank == cr) m++, x += tb[i].distorted;
        if (!m) continue;
        if (!hw_enabled(&r->cfg.cloud_compute)) {
            n += (size_t)snprintf(line + n, sizeof line - n, "; cloud unprofiled");
            break;
        }
        n += (size_t)snprintf(line + n, sizeof line - n, "; cloud rank %d %llu of %llu passes", cr,
                              (unsigned long long)x, (unsigned long long)m);
        if ((double)x / m > worst) worst = (double)x / m, worst_who = -2 - cr;
    }
    printf("%s\n", line);
    trace_set_attr_str(tf, "timing_distorted", line);
    if (worst > r->cfg.max_distorted) {
        char who[32];
        if (worst_who >= 0) snprintf(who, sizeof who, "device %d", worst_who);
        else snprintf(who, sizeof who, "cloud rank %d", -2 - worst_who);
        fprintf(stderr, "hat run: WARNING: %.1f %% of %s's steps took longer on this host than its profile predicts "
                "(above [run] max_distorted = %g %%): their times are this host's, not the profile's; the run's TTFT/TBT "
                "do not represent the modelled hardware\n", 100 * worst, who, 100 * r->cfg.max_distorted);
        trace_set_attr_str(tf, "timing_warning", "distorted steps above max_distorted: times are partly this host's");
    }
}

/* rank 0, end of run: report from every record, printed and stored */
static void finish_root(run_ctx *r, trace_file *tf) {
    collector *c = &r->col;
    char err[HAT_ERRLEN];
    report rep;
    int rc = collected_report(c, r->cfg.n_devices, &rep, err);
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
    print_prefill(r);
    print_distorted(r, tf);
    fflush(stdout);
    char cost[160];
    collector_cost_describe(c, cost, sizeof cost);
    fprintf(stderr, "trace overhead (rank 0 serving loop): %s\n", cost);
    trace_set_attr_str(tf, "trace_overhead", cost);
    rc = trace_write_summary(tf, rep.rows, rep.n_rows, rep.hist, rep.n_hist);
    CHECK(rc == HAT_OK, "trace: writing the report failed");
    report_free(&rep);
}


/* stage 0: the command line, parsed by every rank before MPI started (cli/cli_run.c) */
static int start_args(const run_opts *o) {
    char msg[HAT_ERRLEN];
    snprintf(msg, sizeof msg, "%s", o->refused ? o->refused : "");
    if (comm_agree(o->refused ? HAT_ERR_ARG : HAT_OK, msg, sizeof msg, NULL) == HAT_OK) return 0;
    if (comm_get()->rank == 0) fprintf(stderr, "%s\n", msg);
    return 2;
}

/* the trace is none of the run's input files (with --overwrite it would replace one) */
static int trace_not_input(const hat_config *c, char *err, size_t errlen) {
    const struct { const char *what, *path; } in[] = {
        {"config file", c->path}, {"model", c->model_path}, {"adapter", c->adapter_path},
        {"[profiles] links", c->links_path}, {"[profiles] devices", c->devices_path},
        {"[profiles] servers", c->servers_path}, {"[profiles] shapes", c->shapes_path},
        {"[devices] prompts", c->prompts_path}};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        if (in[i].path[0] && hat_same_file(c->trace, in[i].path))
            return hat_err(err, errlen, HAT_ERR_ARG, "the trace path %s is the run's %s (%s): refused, a trace would replace it",
                           c->trace, in[i].what, in[i].path);
    return HAT_OK;
}

/* the config, the model's header, the config checked against both and the rank count; then the
 * role of this rank */
static int start_config(run_ctx *r, const run_opts *o) {
    char err[HAT_ERRLEN] = "";
    int rc = config_load(&r->cfg, o->config_path, err, sizeof err);
    if (stage(rc, err, "config")) return 1;
    if (o->trace_path && strlen(o->trace_path) >= sizeof r->cfg.trace)
        rc = hat_err(err, sizeof err, HAT_ERR_ARG, "--trace: a path of %zu characters (at most %zu)", strlen(o->trace_path),
                     sizeof r->cfg.trace - 1);
    else if (o->trace_path) snprintf(r->cfg.trace, sizeof r->cfg.trace, "%s", o->trace_path);
    if (!rc) rc = trace_not_input(&r->cfg, err, sizeof err);
    if (stage(rc, err, "config")) return 1;

    rc = gguf_open(&r->gf, r->cfg.model_path, err, sizeof err);
    if (!rc) rc = model_read_config(r->gf, &r->mc, err, sizeof err);
    if (stage(rc, err, "model")) return 1;

    rc = config_validate(&r->cfg, r->size, r->mc.n_layer, r->mc.n_ctx_train, err, sizeof err);
    if (!rc) rc = run_timing_init(&r->tm, &r->cfg, r->gf, &r->mc, err, sizeof err);
    if (stage(rc, err, "config")) return 1;
    hat_set_time_scale(r->cfg.time_scale);   /* before anything is timed: the cost probe, the roles */
    transport_set_peer_timeout(r->cfg.peer_timeout_s);
    r->part = (partition){r->mc.n_layer, r->cfg.a, r->cfg.b, r->cfg.n_cloud, r->cfg.n_devices, r->cfg.tp};
    r->role = partition_role(&r->part, r->rank);
    char role[32];   /* the process role in messages (comm_set_role keeps a copy) */
    if (r->role == ROLE_DEVICE) {
        r->device = partition_device_of_rank(&r->part, r->rank);
        snprintf(role, sizeof role, "device %d", r->device);
    } else {
        snprintf(role, sizeof role, "cloud %d", r->rank);
    }
    comm_set_role(role);
    return 0;
}

/* devices tokenize their prompt; rank 0 holds a tokenizer to print the devices' texts; in the
 * cloud-only baseline every cloud rank needs one too (it decides the end of a session at EOG) */
static int start_prompt(run_ctx *r) {
    char err[HAT_ERRLEN] = "";
    int rc = HAT_OK;
    if (r->role == ROLE_DEVICE || r->rank == 0 || r->cfg.run_mode == RUN_CLOUD_ONLY)
        rc = tokenizer_init(&r->tok, r->gf, err, sizeof err);
    if (!rc && r->role == ROLE_DEVICE) rc = build_prompt(r, &r->cfg.dev[r->device], err, sizeof err);
    if (stage(rc, err, "prompt")) return 1;
    /* every rank learns every device's prompt length: both ends size a device's messages by it */
    double mine = r->role == ROLE_DEVICE ? r->n_prompt : 0, *all = xcalloc((size_t)r->size, sizeof *all);
    comm_allgather_doubles(&mine, 1, all);
    r->prompt_len = xcalloc((size_t)r->cfg.n_devices, sizeof *r->prompt_len);
    for (int i = 0; i < r->cfg.n_devices; i++) r->prompt_len[i] = (int)all[partition_rank_of_device(&r->part, i)];
    free(all);
    return 0;
}

/* the buffers this config implies, summed over the ranks of each host before any is allocated;
 * more than the host has available is refused naming the key that drives the largest part */
static int start_memory(run_ctx *r) {
    enum { W = 3 + MEM_N };
    mem_need mine, host;
    memset(&host, 0, sizeof host);
    mem_need_of_rank(r, &mine);
    double row[W] = {comm_get()->host, mine.sessions, mine.ring_rows}, *all = xcalloc((size_t)r->size * W, sizeof *all);
    for (int p = 0; p < MEM_N; p++) row[3 + p] = mine.bytes[p];
    comm_allgather_doubles(row, W, all);
    int n = 0;
    for (int i = 0; i < r->size; i++) {
        const double *x = all + (size_t)i * W;
        if ((int)x[0] != comm_get()->host) continue;
        n++;
        if ((int)x[1] > host.sessions) host.sessions = (int)x[1];
        if ((int)x[2] > host.ring_rows) host.ring_rows = (int)x[2];
        for (int p = 0; p < MEM_N; p++) host.bytes[p] += x[3 + p];
    }
    free(all);
    char err[HAT_ERRLEN] = "";
    const int rc = mem_judge(&r->cfg, &host, n, mem_available(), err, sizeof err);
    return stage(rc, err, "memory") ? 1 : 0;
}

/* HAT: the draft adapter must have been fitted for this model file and this split */
static int start_adapter(run_ctx *r) {
    char err[HAT_ERRLEN] = "";
    int rc = HAT_OK;
    if (r->cfg.run_mode == RUN_HAT && (r->role == ROLE_DEVICE || r->rank == 0)) {
        if (!strcmp(r->cfg.adapter_path, "identity")) r->ad = adapter_identity(r->mc.dim, r->cfg.a, r->cfg.b);
        else rc = adapter_load(&r->ad, r->cfg.adapter_path, r->gf, r->mc.n_layer, r->mc.dim, r->cfg.a, r->cfg.b, err, sizeof err);
    }
    return stage(rc, err, "adapter") ? 1 : 0;
}

/* A tensor-parallel group runs on one kind of backend: CUDA only if every rank of it has a GPU
 * (agreed before any rank opens one: the CUDA backend's set-up is collective over the group).
 * Sets bd->kind to the CPU when some rank lacks one, with a note when CUDA was asked for. */
static int tp_group_backend(run_ctx *r, backend_desc *bd, char *note, size_t note_len, char *err, size_t errlen) {
    if (!tp_active(&r->tp) || bd->kind == BACKEND_CPU) return HAT_OK;
    char why[256];
    int n_gpu = 0, ok = backend_cuda_available(&n_gpu, why, sizeof why) == 0, all = 1;
    int *oks = xcalloc((size_t)r->tp.size, sizeof *oks);
    int rc = r->tp.allgather(r->tp.ctx, &ok, oks, sizeof ok, err, errlen);
    for (int i = 0; i < r->tp.size; i++) all &= oks[i];
    free(oks);
    if (!rc && !all && bd->kind == BACKEND_CUDA)
        snprintf(note, note_len, "backend cuda requested but not every rank of tensor-parallel group %d has a GPU: "
                 "the group runs on the CPU", partition_group_of_rank(&r->part, r->rank));
    if (!all) bd->kind = BACKEND_CPU;
    return rc;
}

/* a cloud rank's model on the backend the config asks for (cpu, cuda, auto): the middle submodel
 * [a, L-b), or in the cloud-only baseline the whole model (embedding + layers [0, L) + head) */
static int cloud_backend_open(run_ctx *r, char *err, size_t errlen) {
    const hat_config *c = &r->cfg;
    const int L = r->mc.n_layer, whole = c->run_mode == RUN_CLOUD_ONLY;
    const int l0 = whole ? 0 : c->a, l1 = whole ? L : L - c->b;
    int rc = model_load_file(&r->cloud_model, r->gf, &(model_part){.l0 = l0, .l1 = l1, .embed = whole, .head = whole}, err,
                             errlen);
    if (rc) return rc;
    const int partners = partition_n_served(&r->part, partition_group_of_rank(&r->part, r->rank));
    int max_tok = c->max_batch_tokens;   /* a pass: max_batch_tokens, or one device's largest message */
    for (int i = 0; i < r->cfg.n_devices; i++)
        if (run_msg_max_tok(r, i) > max_tok) max_tok = run_msg_max_tok(r, i);
    backend_desc bd = {.kind = (backend_kind)c->backend, .m = r->cloud_model, .l0 = l0, .l1 = l1,
                       .n_slots = partners > 0 ? partners : 1, .max_tok = max_tok, .n_ctx = c->ctx,
                       .n_threads = c->cloud_threads, .gpu = c->gpu, .local_rank = comm_get()->local_rank,
                       .dtype = (backend_dtype)c->gpu_dtype, .tp = r->tp, .nccl = 1, .no_graphs = !c->gpu_graphs,
                       .gemv = c->gpu_gemv, .embed = whole, .head = whole};
    char group_note[160] = "";
    rc = tp_group_backend(r, &bd, group_note, sizeof group_note, err, errlen);
    if (!rc) rc = backend_open(&r->be, &bd, r->backend_note, sizeof r->backend_note, err, errlen);
    if (!rc && group_note[0]) snprintf(r->backend_note, sizeof r->backend_note, "%s", group_note);
    return rc;
}

/* tensor-parallel groups of cloud ranks (every rank takes part in the split), then the backends */
static int start_backend(run_ctx *r) {
    char err[HAT_ERRLEN] = "";
    int rc = HAT_OK;
    r->tp = (tp_comm){.size = 1};
    if (r->cfg.tp > 1)
        collective_group_open(&r->tp, r->role == ROLE_CLOUD ? partition_group_of_rank(&r->part, r->rank) : -1, r->rank,
                              r->cfg.tp_mode);
    if (r->role == ROLE_CLOUD) rc = cloud_backend_open(r, err, sizeof err);
    else if (r->cfg.run_mode != RUN_CLOUD_ONLY) {   /* a device's submodels: a corrupt tensor fails every rank here */
        const int L = r->mc.n_layer;
        rc = model_load_file(&r->dev_in, r->gf, &(model_part){.l0 = 0, .l1 = r->cfg.a, .embed = 1}, err, sizeof err);
        if (!rc)
            rc = model_load_file(&r->dev_out, r->gf, &(model_part){.l0 = L - r->cfg.b, .l1 = L, .head = 1}, err, sizeof err);
    }
    if (stage(rc, err, "backend")) return 1;
    int dynamic = 0;   /* the cloud's start-up cost probe, when some device plans its chunks */
    for (int i = 0; i < r->cfg.n_devices; i++) dynamic |= r->cfg.dev[i].chunking == CHUNK_DYNAMIC;
    rc = cloud_cost_probe(r, dynamic && r->cfg.run_mode != RUN_CLOUD_ONLY, err, sizeof err);
    if (stage(rc, err, "cost probe")) return 1;
    cloud_cost_share(r);
    return 0;
}

/* rank 0: what is about to run, on stdout */
static void print_plan(const run_ctx *r) {
    char part[1024];
    describe_plan(r, part, sizeof part);
    char chunking[64];
    if (r->cfg.chunking == CHUNK_FIXED) snprintf(chunking, sizeof chunking, "chunking fixed %d tokens", r->cfg.chunk_tokens);
    else snprintf(chunking, sizeof chunking, "chunking %s", chunk_policy_names[r->cfg.chunking]);
    printf("hat run: %s, mode %s, %d ranks, wire %s, %s, links %s\n%s\n", r->cfg.path, r->cfg.mode, r->size,
           wire_dtype_name(r->cfg.wire), chunking, r->cfg.emulate_links ? "emulated" : "not emulated", part);
    if (r->be) printf("cloud backend: %s\n", r->be->desc);
    if (r->backend_note[0]) printf("cloud backend: note: %s\n", r->backend_note);
    if (r->tm.modelled || hw_enabled(&r->cfg.cloud_compute)) {
        char tm[512];
        run_timing_describe(&r->tm, tm, sizeof tm);
        printf("timing: %s; cloud compute %s (modelled times, not measurements of that hardware)\n", tm,
               r->cfg.cloud_compute.name);
    }
    if (r->cfg.time_scale > 1)
        printf("timing: run clock dilated %g x: every time below is run-clock (modelled) time; the run takes %g x as "
               "long in real time\n", r->cfg.time_scale, r->cfg.time_scale);
    if (r->ad) {
        char ad[512];
        adapter_describe(r->ad, ad, sizeof ad);
        if (r->cfg.gamma_adaptive) printf("hat: adaptive draft length in [%d, %d], adapter %s\n", r->cfg.gamma_min, r->cfg.gamma_max, ad);
        else printf("hat: draft length %d, adapter %s\n", r->cfg.gamma, ad);
    }
    fflush(stdout);
}

/* rank 0 creates the trace (refused if it exists, unless --overwrite); then every rank's
 * collector, and rank 0's abort path that marks the trace failed */
static int start_trace(run_ctx *r, const run_opts *o, trace_file **tf) {
    char err[HAT_ERRLEN] = "";
    int rc = HAT_OK;
    if (r->rank == 0) {
        rc = trace_create(tf, r->cfg.trace, o->overwrite, err, sizeof err);
        if (!rc) set_attrs(r, *tf, r->cfg.trace);
    }
    if (stage(rc, err, "trace")) return 1;
    collector_init(&r->col, r->rank == 0, *tf, 256);
    g_col = &r->col;
    g_n_devices = r->cfg.n_devices;
    comm_on_abort(on_abort);
    if (r->rank == 0) {
        g_trace = *tf;
        print_plan(r);
    }
    return 0;
}

/* every rank's role, from one synchronised start instant; rank 0 then reports and closes the trace */
static void run_roles(run_ctx *r, trace_file *tf) {
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
        const int rc = trace_close(tf, "complete");
        CHECK(rc == HAT_OK, "trace: closing %s failed", r->cfg.trace);
        printf("trace: %s\n", r->cfg.trace);
    }
    collector_free(&r->col);
    comm_barrier();
}

static void run_free(run_ctx *r) {
    model_free(r->dev_in);   /* where the role did not take them (a start-up failure) */
    model_free(r->dev_out);
    free(r->prompt);
    free(r->prompt_len);
    if (r->fit) cost_fit_free(r->fit);
    free(r->fit);
    adapter_free(r->ad);
    backend_free(r->be);
    model_free(r->cloud_model);
    collective_group_close(&r->tp);
    if (r->tok) tokenizer_free(r->tok);
    if (r->gf) gguf_close(r->gf);
    config_free(&r->cfg);
    free(r);
}

int run_main(const run_opts *o) {
    hat_catch_interrupts();   /* SIGINT/SIGTERM: an orderly failure, the trace closed (common.h); caught
                               * from the start, so one that comes during MPI_Init is reported after it */
    comm_init(NULL, NULL);
    run_ctx *r = xcalloc(1, sizeof *r);
    r->rank = comm_get()->rank;
    r->size = comm_get()->size;
    trace_file *tf = NULL;
    /* every rank passes the same stages (each ends in an agreement), so all leave at the same one */
    int rc = start_args(o);
    if (!rc && (start_config(r, o) || start_prompt(r) || start_memory(r) || start_adapter(r) || start_backend(r) || start_trace(r, o, &tf)))
        rc = 1;
    if (!rc) run_roles(r, tf);
    run_free(r);
    comm_finalize();
    return rc;
}
