/* calibrate.c — see calibrate.h: the calibration command's work, from the options to the adapter file and
 * its report. */
#include "calib/calibrate.h"

#include "calib/adapter_fit.h"
#include "calib/corpus.h"
#include "calib/hidden.h"
#include "core/common.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "split/adapter.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void calib_opts_init(calib_opts *o) {
    *o = (calib_opts){.form = ADAPTER_LINEAR, .rank = ADAPTER_DEFAULT_RANK, .lambda = {ADAPTER_DEFAULT_LAMBDA},
                      .n_lambda = 1, .gen = 128, .samples = 1, .chat = 1, .holdout = -1, .threads = 2, .min_pos = 1,
                      .chunk = 256, .seed = 1};
}

int calib_opts_check(const calib_opts *o, char *err, size_t errlen) {
#define BAD(...) return hat_err(err, errlen, HAT_ERR_ARG, __VA_ARGS__)
    if (!o->model) BAD("--model is required");
    if (!!o->prompts + !!o->corpus_in != 1) BAD("give exactly one of --prompts FILE and --corpus F.tok");
    if (o->corpus_in && (o->set_gen || o->set_temp || o->set_seed || o->set_chat || o->set_samples))
        BAD("--gen, --samples, --temp, --seed and --chat describe generation; a --corpus fixes them (drop them)");
    if (o->samples > 1 && !(o->temp > 0))
        BAD("--samples %d: the generations after the first (greedy) one are sampled, give --temp > 0", o->samples);
    if (o->corpus_in && o->corpus_out) BAD("--corpus-out needs --prompts (the corpus is read with --corpus)");
    if (!o->out && !o->corpus_out) BAD("nothing to do: give --out X.adapter (and --split A,B) or --corpus-out F.tok");
    if (o->out && !o->a) BAD("--out needs --split A,B");
    if (!o->out && o->a) BAD("--split needs --out X.adapter");
    if (o->n_lambda < 1 || o->n_lambda > CALIB_MAX_LAMBDA) BAD("--lambda takes 1 to %d values", CALIB_MAX_LAMBDA);
    return HAT_OK;
#undef BAD
}

/* --out and --corpus-out: writable, and none of the inputs (nor each other) */
static int outputs_check(const calib_opts *o, char *err, size_t errlen) {
    const struct { const char *flag, *path; } out[] = {{"--out", o->out}, {"--corpus-out", o->corpus_out}},
                                              in[] = {{"--model", o->model}, {"--prompts", o->prompts},
                                                      {"--corpus", o->corpus_in}};
    for (int i = 0; i < 2; i++) {
        if (!out[i].path) continue;
        int rc = hat_path_writable(out[i].path, err, errlen);
        if (rc) return rc;
        for (int j = 0; j < 3; j++)
            if (in[j].path && (hat_same_file(out[i].path, in[j].path) || !strcmp(out[i].path, in[j].path)))
                return hat_err(err, errlen, HAT_ERR_ARG, "%s %s is the %s file: refused, it would be overwritten",
                               out[i].flag, out[i].path, in[j].flag);
    }
    if (o->out && o->corpus_out && (!strcmp(o->out, o->corpus_out) || hat_same_file(o->out, o->corpus_out)))
        return hat_err(err, errlen, HAT_ERR_ARG, "--out and --corpus-out name the same file %s", o->out);
    return HAT_OK;
}

/* everything one calibration holds, freed at the end */
typedef struct {
    gguf_file *f;
    model *m;
    tokenizer *tok;
    corpus c;
    hidden_set hs;
    adapter *ad;
    hidden_opts ho;
    int n_prompts, n_greedy, holdout, n_train_seq;
    int mixed;               /* greedy and sampled generations */
    int agree_greedy_only;   /* draft agreement measured on the held-out greedy generations only */
    double best_lambda;
    adapter_metrics mh, mg, mgr, mgg;   /* held-out: all, generated, greedy, both */
    hidden_agreement ag;
    double t_corpus, t_collect, t_fit, t_agree;
    char desc[1024];
    char err[HAT_ERRLEN];
} calib_state;

static int fail_msg(const calib_state *s) {
    fprintf(stderr, "hat calibrate: %s\n", s->err);
    return 1;
}

/* the corpus, generated (and saved with corpus_out) or read */
static int make_corpus(calib_state *s, const calib_opts *o) {
    double t0 = hat_now();
    if (o->prompts) {
        const corpus_gen_opts g = {.prompts = o->prompts, .gen = o->gen, .samples = o->samples, .temp = o->temp,
                                   .seed = o->seed, .chat = o->chat, .chunk = o->chunk, .threads = o->threads};
        if (corpus_generate(&s->c, &g, s->f, s->m, s->tok, s->err, sizeof s->err)) return fail_msg(s);
        if (o->corpus_out) {
            if (corpus_save(&s->c, o->corpus_out, s->err, sizeof s->err)) return fail_msg(s);
            fprintf(stderr, "corpus: wrote %s\n", o->corpus_out);
        }
    } else if (corpus_load(&s->c, o->corpus_in, s->f, s->m->cfg.n_vocab, s->err, sizeof s->err)) {
        return fail_msg(s);
    }
    s->t_corpus = hat_now() - t0;
    return 0;
}

/* held out: every sequence of the last `holdout` prompts (sequences are stored prompt by prompt) */
static int choose_holdout(calib_state *s, const calib_opts *o) {
    const corpus *c = &s->c;
    s->n_prompts = 1;
    s->n_greedy = 0;
    for (int i = 0; i < c->n_seq; i++) {
        s->n_prompts += i > 0 && c->prompt[i] != c->prompt[i - 1];
        s->n_greedy += c->seq_temp[i] <= 0;
    }
    const int np = s->n_prompts;
    s->holdout = o->holdout;
    if (s->holdout < 0) s->holdout = np < 2 ? 0 : (np + 5) / 10 > 0 ? (np + 5) / 10 : 1;
    if (s->holdout >= np) {
        fprintf(stderr, "hat calibrate: --holdout %d leaves nothing to fit (the corpus has %d prompts)\n", s->holdout,
                np);
        return 1;
    }
    s->n_train_seq = c->n_seq;
    for (int k = 0; k < s->holdout; k++) {
        const uint32_t pr = c->prompt[s->n_train_seq - 1];
        while (s->n_train_seq > 0 && c->prompt[s->n_train_seq - 1] == pr) s->n_train_seq--;
    }
    return 0;
}

/* one fit per lambda candidate; the best held-out R^2 is kept (the first when nothing is held out) */
static int fit_best(calib_state *s, const calib_opts *o) {
    double t0 = hat_now();
    s->best_lambda = o->lambda[0];
    for (int k = 0; k < o->n_lambda; k++) {
        adapter *cand = NULL;
        adapter_metrics ch, cg;
        if (adapter_fit_stats(&cand, s->hs.train, (adapter_form)o->form, o->rank, o->lambda[k], s->err,
                              sizeof s->err))
            return fail_msg(s);
        adapter_eval(cand, s->hs.hx, s->hs.ht, s->hs.n_held, &ch);
        hidden_eval(cand, &s->hs, HIDDEN_GEN, &cg);
        if (o->n_lambda > 1)
            fprintf(stderr, "fit: lambda %-8g R^2 of h_{L-b} - h_a: train %.4f held-out %.4f (generated %.4f)\n",
                    o->lambda[k], adapter_get_info(cand)->r2_train, ch.r2, cg.r2);
        if (!s->ad || ch.r2 > s->mh.r2) {
            adapter_free(s->ad);
            s->ad = cand;
            s->mh = ch;
            s->mg = cg;
            s->best_lambda = o->lambda[k];
        } else {
            adapter_free(cand);
        }
    }
    s->t_fit = hat_now() - t0;
    return 0;
}

/* The held-out figures of the greedy generations, when the corpus mixes greedy and sampled ones, and the draft
 * agreement. Greedy HAT decodes from greedy text, and a quarter of the positions of a 4-sample corpus take a
 * quarter of the time: with greedy held-out sequences at hand, only they are measured. */
static int measure(calib_state *s) {
    const corpus *c = &s->c;
    s->mixed = s->n_greedy > 0 && s->n_greedy < c->n_seq;
    if (s->mixed) {
        hidden_eval(s->ad, &s->hs, HIDDEN_GREEDY, &s->mgr);
        hidden_eval(s->ad, &s->hs, HIDDEN_GREEDY | HIDDEN_GEN, &s->mgg);
    }
    int held_greedy = 0;
    for (int i = s->n_train_seq; i < c->n_seq; i++) held_greedy += c->seq_temp[i] <= 0;
    s->agree_greedy_only = s->mixed && held_greedy > 0;
    if (s->holdout) {
        double t0 = hat_now();
        if (hidden_draft_agreement(c, s->m, &s->ho, s->n_train_seq, s->agree_greedy_only, s->ad, &s->ag, s->err,
                                   sizeof s->err))
            return fail_msg(s);
        s->t_agree = hat_now() - t0;
    }
    return 0;
}

/* what the adapter was fitted on, as the file records it */
static void describe_corpus(calib_state *s, const calib_opts *o) {
    const corpus *c = &s->c;
    uint64_t n_all = 0;
    for (int i = 0; i < c->n_seq; i++) n_all += c->n_tok[i];
    char temp[112];
    if (c->samples > 1)
        snprintf(temp, sizeof temp, "%u generations each: 1 greedy, %u at temp %g, seeds %llu + %u*prompt + sample",
                 c->samples, c->samples - 1, c->temp, (unsigned long long)c->seed, c->samples);
    else if (c->temp > 0) snprintf(temp, sizeof temp, "temp %g, seed %llu", c->temp, (unsigned long long)c->seed);
    else snprintf(temp, sizeof temp, "greedy");
    snprintf(s->desc, sizeof s->desc,
             "%s: %d prompts of %s (%llu bytes, crc 0x%08x), chat %s, up to %u generated tokens each (%s), "
             "%d sequences, %llu tokens; "
             "fitted positions >= %d, shared prefixes once, last %d prompts held out%s%s; hat %s (%s)",
             o->corpus_in ? o->corpus_in : o->corpus_out ? o->corpus_out : "corpus generated in the same run",
             s->n_prompts, c->prompts_name, (unsigned long long)c->prompts_size, c->prompts_crc, c->chat ? "on" : "off",
             c->gen, temp, c->n_seq, (unsigned long long)n_all, o->min_pos, s->holdout,
             o->n_lambda > 1 ? " (and used to choose lambda)" : "",
             s->agree_greedy_only ? ", draft agreement on their greedy generations" : "", c->hat_version, c->hat_git);
}

static void print_report(const calib_state *s, const calib_opts *o) {
    const corpus *c = &s->c;
    const hidden_set *hs = &s->hs;
    const adapter_metrics *mh = &s->mh, *mg = &s->mg;
    const adapter_info *in = adapter_get_info(s->ad);
    const int L = s->m->cfg.n_layer;
    const double agree = in->agree_heldout, agree_id = in->agree_identity_heldout;
    uint64_t n_all = 0;
    for (int i = 0; i < c->n_seq; i++) n_all += c->n_tok[i];
    char rank[32] = "";
    if (o->form == ADAPTER_LOWRANK) snprintf(rank, sizeof rank, " rank %d", o->rank);
    printf("calibrate: %s%s adapter for split a=%d b=%d (stands in for layers [%d,%d) of %d), lambda %g%s\n",
           adapter_form_name((adapter_form)o->form), rank, o->a, o->b, o->a, L - o->b, L, s->best_lambda,
           o->n_lambda > 1 ? " (best held-out R^2 of the candidates)" : "");
    printf("  corpus: %s\n", s->desc);
    printf("  tokens: %llu fitted (%llu generated) from %d sequences, %zu held out from %d sequences of %d prompts; "
           "skipped %llu at position < %d and %llu in shared prefixes; max |h_a| %.0f, max |h_{L-b}| %.0f\n",
           (unsigned long long)adapter_stats_count(hs->train), (unsigned long long)hs->n_train_gen, s->n_train_seq,
           hs->n_held, c->n_seq - s->n_train_seq, s->holdout, (unsigned long long)hs->n_skip_pos, o->min_pos,
           (unsigned long long)hs->n_skip_prefix, hs->max_x, hs->max_t);
    printf("  R^2 of h_{L-b} - h_a:  train %.4f  held-out %.4f  held-out generated %.4f\n", in->r2_train, mh->r2,
           mg->r2);
    printf("  R^2 of h_{L-b}:        train %.4f  held-out %.4f  held-out generated %.4f  "
           "(identity adapter: held-out %.4f, generated %.4f)\n", in->r2_target_train, mh->r2_target, mg->r2_target,
           mh->r2_identity, mg->r2_identity);
    printf("  per-token error, held-out: rms %.2f, relative %.4f\n", mh->rms, mh->rel_err);
    if (s->mixed)
        printf("  held-out greedy generations only: R^2 of h_{L-b} - h_a %.4f (generated %.4f), of h_{L-b} %.4f "
               "(generated %.4f)\n", s->mgr.r2, s->mgg.r2, s->mgr.r2_target, s->mgg.r2_target);
    printf("  draft agreement with the full model's next token, held-out%s: %.1f%% (identity adapter %.1f%%) at %llu "
           "generated positions\n", s->agree_greedy_only ? " greedy generations" : "", 100 * agree, 100 * agree_id,
           (unsigned long long)s->ag.n);
    if (s->ag.n_greedy)
        printf("  (self-check: the full model's prediction equals the greedy corpus's next token at %llu of %llu)\n",
               (unsigned long long)s->ag.same, (unsigned long long)s->ag.n_greedy);
    printf("  time: corpus %.1f s, hidden states %.1f s (%.0f tok/s), fit %.2f s, draft agreement %.1f s\n",
           s->t_corpus, s->t_collect, s->t_collect > 0 ? n_all / s->t_collect : 0.0, s->t_fit, s->t_agree);
    printf("wrote %s\n", o->out);
}

/* After the corpus: hidden states, fit, measurements, the adapter file and the report. */
static int fit_and_write(calib_state *s, const calib_opts *o) {
    if (choose_holdout(s, o)) return 1;
    double t0 = hat_now();
    if (hidden_collect(&s->hs, &s->c, s->m, &s->ho, s->n_train_seq, s->err, sizeof s->err)) return fail_msg(s);
    s->t_collect = hat_now() - t0;
    if (o->n_lambda > 1 && !s->holdout) {
        fprintf(stderr, "hat calibrate: several --lambda values need held-out sequences to choose from "
                        "(--holdout > 0)\n");
        return 1;
    }
    if (fit_best(s, o) || measure(s)) return 1;
    const hidden_agreement *ag = &s->ag;
    const double agree = ag->n ? (double)ag->hit / (double)ag->n : NAN;
    const double agree_id = ag->n ? (double)ag->hit_id / (double)ag->n : NAN;
    describe_corpus(s, o);
    adapter_set_provenance(s->ad, s->f, s->m->cfg.n_layer, o->a, o->b, o->min_pos, s->desc,
                           s->hs.n_held ? &s->mh : NULL);
    adapter_set_agreement(s->ad, agree, agree_id, ag->n);
    if (adapter_save(s->ad, o->out, s->err, sizeof s->err)) return fail_msg(s);
    print_report(s, o);
    return 0;
}

int calib_run(const calib_opts *o) {
    calib_state s = {.ho = {.a = o->a, .b = o->b, .min_pos = o->min_pos, .chunk = o->chunk, .threads = o->threads}};
    if (calib_opts_check(o, s.err, sizeof s.err)) {
        fprintf(stderr, "hat calibrate: %s\n", s.err);
        return 2;
    }
    if (outputs_check(o, s.err, sizeof s.err)) {   /* before any work: it takes minutes */
        fprintf(stderr, "hat calibrate: %s\n", s.err);
        return 1;
    }
    int rc = 1;
    if (gguf_open(&s.f, o->model, s.err, sizeof s.err) ||
        model_load_file(&s.m, s.f, &(model_part){.l0 = 0, .l1 = -1, .embed = 1, .head = 1}, s.err, sizeof s.err) ||
        tokenizer_init(&s.tok, s.f, s.err, sizeof s.err)) {
        fail_msg(&s);
    } else if (o->out && o->a + o->b >= s.m->cfg.n_layer) {
        const int L = s.m->cfg.n_layer;
        fprintf(stderr, "hat calibrate: --split %d,%d: the model has %d layers, so A + B must be < %d\n", o->a, o->b,
                L, L);
    } else if (!make_corpus(&s, o)) {
        rc = o->out ? fit_and_write(&s, o) : 0;
    }
    adapter_free(s.ad);
    hidden_free(&s.hs);
    corpus_free(&s.c);
    tokenizer_free(s.tok);
    model_free(s.m);
    if (s.f) gguf_close(s.f);
    return rc;
}
