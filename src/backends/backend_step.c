/* backend_step.c — the step check every backend runs first (backend.h). */
#include "backends/backend.h"

#include "core/common.h"

int backend_check_step(const backend *b, const backend_seq *seqs, int n_seq, char *err, size_t errlen) {
    const char *who = b->ops->name;
    int tok = 0;
    for (int i = 0; i < n_seq; i++) {
        const backend_seq *s = &seqs[i];
        const int held = s->slot >= 0 && s->slot < b->n_slots ? b->ops->kv_len(b, s->slot) : -1;
        if (held < 0 || s->n_tok < 1 || s->pos0 < 0 || s->pos0 > held || s->pos0 + s->n_tok > b->n_ctx)
            return hat_err(err, errlen, HAT_ERR_ARG, "backend %s: sequence %d (slot %d, positions %d+%d) does not fit "
                           "(slots %d, slot holds %d, ctx %d)", who, i, s->slot, s->pos0, s->n_tok, b->n_slots, held,
                           b->n_ctx);
        for (int j = 0; j < i; j++)
            if (seqs[j].slot == s->slot)
                return hat_err(err, errlen, HAT_ERR_ARG, "backend %s: slot %d twice in one step", who, s->slot);
        tok += s->n_tok;
    }
    if (tok > b->max_tok)
        return hat_err(err, errlen, HAT_ERR_ARG, "backend %s: %d tokens in one step, planned for %d", who, tok, b->max_tok);
    return HAT_OK;
}
