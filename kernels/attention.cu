/* attention.cu — the fp16 KV cache: hk_kv_store writes a batch's K/V rows, hk_attention reads
 * them for causal attention over many sequences (slots) of different lengths in one launch.
 *
 * hk_attention design (flash-decoding style, one pass, no workspace):
 *  - One block per (token t, kv head, batch of HPW query heads of that kv head's GQA group).
 *    HPW (1..4) divides the group size (n_head / n_head_kv); every warp of the block works for all
 *    HPW query heads at once, so each K/V element is loaded once and used HPW times.
 *  - The block's warps split the key positions [0, pos[t]] between them, in chunks of KC keys
 *    (warp w takes chunks w, w + nw, w + 2nw, ...). Each warp keeps an online softmax per head:
 *    running max m, running sum l and an unnormalised fp32 output acc, rescaled by exp(m_old -
 *    m_new) when the max grows. The keys' loads of one chunk (K and V, KC rows) are all issued
 *    before they are used.
 *  - Lane layout: each lane holds E = head_dim/32 elements of q, of a K row, of a V row and of the
 *    output, at dims (32*VW)*(e/VW) + VW*lane + e%VW; VW (1, 2, 4 or 8 halves) is the widest vector
 *    with head_dim % (32*VW) == 0, so a warp reads a K or V row as one coalesced run of 4-, 8- or
 *    16-byte loads (scalar 2-byte loads when a slot's cache pointer is not VW*2-byte aligned).
 *    Scores: per-lane partial dot products summed across the warp with shuffles.
 *  - At the end the warps' (m, l, acc) are merged through shared memory (fixed size: at most
 *    8 warps x 4 heads x 256 dims of fp32 = 32 KiB) and the block writes out = acc / l.
 *    Nothing depends on the context length but the loop count: any pos < n_ctx works.
 *  - Numerics: fp32 throughout; q is pre-multiplied by scale*log2(e) so the softmax uses exp2f;
 *    K and V are read from the fp16 cache exactly. q and the probabilities are NOT rounded to
 *    fp16 (the CPU engine does, to mirror llama.cpp): the two backends differ by about 1e-3
 *    relative; against an fp64 reference on the same fp16 K/V this kernel is within ~1e-6.
 *  - max_pos only picks the number of warps per block (fewer for short contexts).
 *  - A token whose slot id is negative or whose pos is outside [0, n_ctx) gets a NaN output row
 *    (no read); slot ids are otherwise trusted (the launch cannot see the number of slots). */
#include "common.cuh"

#include <math.h>

#define KVS_THREADS 256
#define ATT_WARPS 8

/* ---- hk_kv_store ---- */
static __global__ void __launch_bounds__(KVS_THREADS)
kv_store_kernel(uint16_t *const *__restrict__ k_cache, uint16_t *const *__restrict__ v_cache,
                const float *__restrict__ k, const float *__restrict__ v, const int32_t *__restrict__ tslot,
                const int32_t *__restrict__ pos, int li, int n_ctx, int kv_dim) {
    const size_t t = blockIdx.x;
    const int slot = tslot[t], p = pos[t];
    if (slot < 0 || p < 0 || p >= n_ctx) return;
    const size_t off = ((size_t)li * (size_t)n_ctx + (size_t)p) * (size_t)kv_dim;
    uint16_t *kd = k_cache[slot] + off, *vd = v_cache[slot] + off;
    const float *ks = k + t * (size_t)kv_dim, *vs = v + t * (size_t)kv_dim;
    for (int i = threadIdx.x; i < kv_dim; i += KVS_THREADS) {
        kd[i] = hk_f2h(ks[i]);
        vd[i] = hk_f2h(vs[i]);
    }
}

static int kv_store_launch(cudaStream_t stream, uint16_t *const *k_cache, uint16_t *const *v_cache, const float *k,
                           const float *v, const int32_t *tslot, const int32_t *pos, int n_tok, int li, int n_ctx,
                           int kv_dim) {
    static const char *const op = "hk_kv_store";
    HK_CHECK(op, n_tok >= 0, "n_tok %d", n_tok);
    HK_CHECK(op, li >= 0, "li %d", li);
    HK_CHECK(op, n_ctx > 0, "n_ctx %d", n_ctx);
    HK_CHECK(op, kv_dim > 0, "kv_dim %d", kv_dim);
    if (n_tok == 0) return 0;
    HK_CHECK(op, k_cache != NULL && v_cache != NULL && k != NULL && v != NULL && tslot != NULL && pos != NULL,
             "k_cache %p, v_cache %p, k %p, v %p, tslot %p, pos %p", (const void *)k_cache, (const void *)v_cache,
             (const void *)k, (const void *)v, (const void *)tslot, (const void *)pos);
    kv_store_kernel<<<(unsigned)n_tok, KVS_THREADS, 0, stream>>>(k_cache, v_cache, k, v, tslot, pos, li, n_ctx, kv_dim);
    return hk_launch_check(op, "kv_store_kernel");
}

extern "C" int hk_kv_store(void *stream, uint16_t *const *k_cache, uint16_t *const *v_cache, const float *k,
                           const float *v, const int32_t *tslot, const int32_t *pos, int n_tok, int li, int n_ctx,
                           int kv_dim) {
    return kv_store_launch((cudaStream_t)stream, k_cache, v_cache, k, v, tslot, pos, n_tok, li, n_ctx, kv_dim);
}

/* ---- hk_attention ---- */
template <int HD> struct att_shape {
    static constexpr int E = HD / 32; /* elements per lane */
    static constexpr int VW = HD % 256 == 0 ? 8 : HD % 128 == 0 ? 4 : HD % 64 == 0 ? 2 : 1;
    static constexpr int KC = 16 / E < 2 ? 2 : 16 / E; /* keys per chunk */
    static __device__ __forceinline__ int dim(int lane, int e) { return (32 * VW) * (e / VW) + VW * lane + e % VW; }
};

static __device__ __forceinline__ float h_lo(uint32_t w) { return hk_h2f((uint16_t)(w & 0xffffu)); }
static __device__ __forceinline__ float h_hi(uint32_t w) { return hk_h2f((uint16_t)(w >> 16)); }

/* this lane's E elements of one cache row (row = start of the kv head's HD halves) */
template <int HD>
static __device__ __forceinline__ void att_load_row(float (&dst)[HD / 32], const uint16_t *row, int lane, bool vec) {
    typedef att_shape<HD> S;
    if (S::VW > 1 && vec) {
#pragma unroll
        for (int b = 0; b < S::E / S::VW; b++) {
            const uint16_t *src = row + (32 * S::VW) * b + S::VW * lane;
            if constexpr (S::VW == 8) {
                const uint4 w = __ldg((const uint4 *)src);
                dst[8 * b + 0] = h_lo(w.x); dst[8 * b + 1] = h_hi(w.x);
                dst[8 * b + 2] = h_lo(w.y); dst[8 * b + 3] = h_hi(w.y);
                dst[8 * b + 4] = h_lo(w.z); dst[8 * b + 5] = h_hi(w.z);
                dst[8 * b + 6] = h_lo(w.w); dst[8 * b + 7] = h_hi(w.w);
            } else if constexpr (S::VW == 4) {
                const uint2 w = __ldg((const uint2 *)src);
                dst[4 * b + 0] = h_lo(w.x); dst[4 * b + 1] = h_hi(w.x);
                dst[4 * b + 2] = h_lo(w.y); dst[4 * b + 3] = h_hi(w.y);
            } else if constexpr (S::VW == 2) {
                const uint32_t w = __ldg((const unsigned int *)src);
                dst[2 * b + 0] = h_lo(w); dst[2 * b + 1] = h_hi(w);
            }
        }
    } else {
#pragma unroll
        for (int e = 0; e < S::E; e++) dst[e] = hk_h2f(__ldg((const unsigned short *)row + S::dim(lane, e)));
    }
}

template <int HD, int HPW>
static __global__ void __launch_bounds__(ATT_WARPS * 32)
attention_kernel(float *__restrict__ out, const float *__restrict__ q, uint16_t *const *__restrict__ k_cache,
                 uint16_t *const *__restrict__ v_cache, const int32_t *__restrict__ tslot,
                 const int32_t *__restrict__ pos, int li, int n_ctx, int n_head, int n_head_kv, int n_hb,
                 float qscale) {
    typedef att_shape<HD> S;
    constexpr int E = S::E, KC = S::KC;
    __shared__ float s_m[ATT_WARPS][HPW], s_l[ATT_WARPS][HPW];
    __shared__ float s_acc[ATT_WARPS][HPW][HD];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int hb = blockIdx.x % n_hb;
    const int kvh = (blockIdx.x / n_hb) % n_head_kv;
    const size_t t = blockIdx.x / ((unsigned)n_hb * (unsigned)n_head_kv);
    const int h0 = kvh * (n_head / n_head_kv) + hb * HPW; /* first query head of this block */
    const size_t q_row = t * (size_t)n_head * HD + (size_t)h0 * HD;
    float *o = out + q_row; /* the HPW heads' outputs are contiguous */

    const int slot = tslot[t], p = pos[t];
    if (slot < 0 || p < 0 || p >= n_ctx) { /* the whole block leaves: no barrier is skipped */
        for (int i = threadIdx.x; i < HPW * HD; i += blockDim.x) o[i] = __int_as_float(0x7fc00000);
        return;
    }
    const size_t kv_dim = (size_t)n_head_kv * HD;
    const size_t off = (size_t)li * (size_t)n_ctx * kv_dim + (size_t)kvh * HD;
    const uint16_t *kb = k_cache[slot] + off, *vb = v_cache[slot] + off;
    const bool vec = ((((uintptr_t)kb) | ((uintptr_t)vb)) & (uintptr_t)(2 * S::VW - 1)) == 0;

    float qr[HPW][E], m[HPW], l[HPW], acc[HPW][E];
#pragma unroll
    for (int i = 0; i < HPW; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            qr[i][e] = q[q_row + (size_t)i * HD + S::dim(lane, e)] * qscale;
            acc[i][e] = 0.0f;
        }
    }

    const int npos = p + 1;
    for (int c0 = warp * KC; c0 < npos; c0 += nw * KC) {
        const int nk = min(KC, npos - c0); /* warp-uniform, >= 1 */
        float kf[KC][E], vf[KC][E];
#pragma unroll
        for (int j = 0; j < KC; j++) {
            if (j < nk) {
                const size_t r = (size_t)(c0 + j) * kv_dim;
                att_load_row<HD>(kf[j], kb + r, lane, vec);
                att_load_row<HD>(vf[j], vb + r, lane, vec);
            } else { /* never read past pos: unused rows are zeros with probability 0 */
#pragma unroll
                for (int e = 0; e < E; e++) kf[j][e] = vf[j][e] = 0.0f;
            }
        }
#pragma unroll
        for (int i = 0; i < HPW; i++) {
            float s[KC];
            float cmax = -INFINITY;
#pragma unroll
            for (int j = 0; j < KC; j++) {
                float d = 0.0f;
#pragma unroll
                for (int e = 0; e < E; e++) d = fmaf(qr[i][e], kf[j][e], d);
                s[j] = hk_warp_sum(d); /* log2-domain score */
                if (j < nk) cmax = fmaxf(cmax, s[j]);
            }
            const float mn = fmaxf(m[i], cmax);
            const float corr = exp2f(m[i] - mn); /* 0 on the first chunk (m = -inf) */
            float ps = 0.0f;
#pragma unroll
            for (int j = 0; j < KC; j++) {
                s[j] = j < nk ? exp2f(s[j] - mn) : 0.0f;
                ps += s[j];
            }
            l[i] = l[i] * corr + ps;
            m[i] = mn;
#pragma unroll
            for (int e = 0; e < E; e++) {
                float a = acc[i][e] * corr;
#pragma unroll
                for (int j = 0; j < KC; j++) a = fmaf(s[j], vf[j][e], a);
                acc[i][e] = a;
            }
        }
    }

    /* merge the warps (a warp that had no keys holds m = -inf, l = 0, acc = 0) */
#pragma unroll
    for (int i = 0; i < HPW; i++) {
        if (lane == 0) {
            s_m[warp][i] = m[i];
            s_l[warp][i] = l[i];
        }
#pragma unroll
        for (int e = 0; e < E; e++) s_acc[warp][i][S::dim(lane, e)] = acc[i][e];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < HPW * HD; idx += blockDim.x) {
        const int i = idx / HD, d = idx - i * HD;
        float mx = -INFINITY;
        for (int w = 0; w < nw; w++) mx = fmaxf(mx, s_m[w][i]);
        float L = 0.0f, O = 0.0f;
        for (int w = 0; w < nw; w++) {
            const float f = exp2f(s_m[w][i] - mx);
            L = fmaf(s_l[w][i], f, L);
            O = fmaf(s_acc[w][i][d], f, O);
        }
        o[idx] = O / L;
    }
}

template <int HD>
static void attention_dispatch(cudaStream_t stream, int hpw, unsigned grid, unsigned threads, float *out,
                               const float *q, uint16_t *const *k_cache, uint16_t *const *v_cache,
                               const int32_t *tslot, const int32_t *pos, int li, int n_ctx, int n_head, int n_head_kv,
                               int n_hb, float qscale) {
#define HK_ATT_LAUNCH(H)                                                                                   \
    attention_kernel<HD, H><<<grid, threads, 0, stream>>>(out, q, k_cache, v_cache, tslot, pos, li, n_ctx, \
                                                          n_head, n_head_kv, n_hb, qscale)
    switch (hpw) {
    case 4: HK_ATT_LAUNCH(4); break;
    case 3: HK_ATT_LAUNCH(3); break;
    case 2: HK_ATT_LAUNCH(2); break;
    default: HK_ATT_LAUNCH(1); break;
    }
#undef HK_ATT_LAUNCH
}

/* warps per block: about two chunks of keys (KC <= 16) per warp at the longest context */
static int attention_warps(int max_pos, int head_dim) {
    const int kc = 16 / (head_dim / 32) < 2 ? 2 : 16 / (head_dim / 32);
    const int nw = (max_pos + 2 * kc - 1) / (2 * kc);
    return nw < 1 ? 1 : nw > ATT_WARPS ? ATT_WARPS : nw;
}

extern "C" int hk_attention_threads(int max_pos, int head_dim) {
    return head_dim >= 32 ? 32 * attention_warps(max_pos, head_dim) : 32;
}

static int attention_launch(cudaStream_t stream, float *out, const float *q, uint16_t *const *k_cache,
                            uint16_t *const *v_cache, const int32_t *tslot, const int32_t *pos, int n_tok, int max_pos,
                            int li, int n_ctx, int n_head, int n_head_kv, int head_dim) {
    static const char *const op = "hk_attention";
    HK_CHECK(op, n_tok >= 0, "n_tok %d", n_tok);
    HK_CHECK(op, head_dim > 0 && head_dim <= 256 && head_dim % 32 == 0, "head_dim %d", head_dim);
    HK_CHECK(op, n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0, "n_head %d, n_head_kv %d", n_head, n_head_kv);
    HK_CHECK(op, n_ctx > 0, "n_ctx %d", n_ctx);
    HK_CHECK(op, li >= 0, "li %d", li);
    HK_CHECK(op, max_pos > 0, "max_pos %d", max_pos);
    if (n_tok == 0) return 0;
    HK_CHECK(op, out != NULL && q != NULL && k_cache != NULL && v_cache != NULL && tslot != NULL && pos != NULL,
             "out %p, q %p, k_cache %p, v_cache %p, tslot %p, pos %p", (void *)out, (const void *)q,
             (const void *)k_cache, (const void *)v_cache, (const void *)tslot, (const void *)pos);
    const int group = n_head / n_head_kv;
    const int hpw = group % 4 == 0 ? 4 : group % 3 == 0 ? 3 : group % 2 == 0 ? 2 : 1;
    const int n_hb = group / hpw;
    const size_t blocks = (size_t)n_tok * (size_t)n_head_kv * (size_t)n_hb;
    HK_CHECK(op, blocks <= (size_t)INT32_MAX, "n_tok %d, n_head %d: %zu blocks", n_tok, n_head, blocks);
    const int nw = attention_warps(max_pos, head_dim);
    const float qscale = (1.0f / sqrtf((float)head_dim)) * 1.4426950408889634f; /* scale * log2(e) */
    const unsigned grid = (unsigned)blocks, threads = (unsigned)(32 * nw);
    switch (head_dim) {
#define HK_ATT_HD(D)                                                                                            \
    case D:                                                                                                     \
        attention_dispatch<D>(stream, hpw, grid, threads, out, q, k_cache, v_cache, tslot, pos, li, n_ctx, n_head, \
                              n_head_kv, n_hb, qscale);                                                         \
        break
        HK_ATT_HD(32); HK_ATT_HD(64); HK_ATT_HD(96); HK_ATT_HD(128);
        HK_ATT_HD(160); HK_ATT_HD(192); HK_ATT_HD(224); HK_ATT_HD(256);
#undef HK_ATT_HD
    }
    return hk_launch_check(op, "attention_kernel");
}

extern "C" int hk_attention(void *stream, float *out, const float *q, uint16_t *const *k_cache,
                            uint16_t *const *v_cache, const int32_t *tslot, const int32_t *pos, int n_tok, int max_pos,
                            int li, int n_ctx, int n_head, int n_head_kv, int head_dim) {
    return attention_launch((cudaStream_t)stream, out, q, k_cache, v_cache, tslot, pos, n_tok, max_pos, li, n_ctx,
                            n_head, n_head_kv, head_dim);
}
