// attention.c: causal (or full) multi-head self-attention, forward and backward, flash-style:
// blocks of queries against blocks of keys with an online softmax, the (T,T) matrices never stored.
//
// Matches src/fasttrain/kernels/ref/attention.py (the spec) and
// torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale) with
// its autograd gradients. qkv (B,T,3C) as one linear layer makes it (nanoGPT's c_attn, llm.c):
// q, k, v the thirds of the last axis, head h the columns [h*hs, (h+1)*hs) of each, hs = C/NH.
// Per (b, h), with S = scale q k^T (T,T), entries j > i masked (causal) as constants -inf:
//   forward:  lse_i = log sum_j exp(S_ij),  P = exp(S - lse),  out_i = sum_j P_ij v_j
//   backward: D_i = dout_i . out_i,  dP = dout v^T,  dS = P * (dP - D)  (0 where masked)
//             dq = scale dS k,  dk = scale dS^T q,  dv = P^T dout
// out (B,T,C) has the heads side by side (y.transpose(1, 2).view(B, T, C) in nanoGPT);
// lse (B,NH,T) is the natural log-sum-exp of each scaled row, the one thing the backward keeps.
//
// The algorithm is FlashAttention's (Dao et al. 2022, arXiv:2205.14135; the backward of
// FlashAttention-2, arXiv:2307.08691), as PyTorch's CPU kernel
// (aten/src/ATen/native/cpu/FlashAttentionKernel.cpp) does it:
//   forward, per block of BQ queries (NQB blocks a task, which share each key block's packed V):
//   for each block of BK keys, S = scale Q K^T, the running row max m grows to m', the
//   accumulator O and the running sum l are rescaled by exp(m - m'),
//   then O += exp(S - m') V and l += the row sums; at the end out = O / l, lse = m + log l.
//   backward, per (b, h): for each key block j, for each query block i at or below it,
//   P = exp(S - lse) is recomputed and dV_j += P^T dO_i; dP = dO_i V_j^T; dS = P (dP - D_i);
//   dQ_i += scale dS K_j; dK_j += scale dS^T Q_i.
// Causal: key blocks wholly above the diagonal are skipped, never computed; only a block that
// straddles the diagonal masks its entries, and its products sum each row over its unmasked
// pairs only (gemm_band): a masked pair enters no sum, so a NaN in a later token's k or v
// reaches no earlier token. Extra memory: lse (B,NH,T) and per-thread blocks
// (the caller's `work`), O(T hs) per thread in the backward, which packs one head at a time.
//
// The products are done here, not by BLAS: a BLAS call from inside an OpenMP region fights
// OpenBLAS's own pool for the cores (fasttrain/threads.py), and the blocks are small. The one
// micro-kernel (gemm_tile) keeps a 4 x 2-vector tile of its result in registers and walks the
// sum index, broadcasting one scalar of the left operand against two vectors of the right, which
// is always packed (or a row of qkv) so that the vectors are contiguous. Scores are computed
// transposed, S^T = K Q^T (keys by rows, BQ queries along the vector), so that the softmax's
// per-query max, exp and sum run along vectors and K is read from qkv as it is: only Q^T (and V,
// padded to whole vectors) is packed per block. Packing moves whole vectors: rows copied vector
// by vector, transposes VL x VL in registers (the scalar loops they replaced were ~30% of the
// time at T = 128). Vectors are GCC's vector extension of VBYTES =
// 32 bytes, which each FT_CLONES clone lowers to its own registers (one ymm; two xmm in the
// baseline): the 8 accumulators of a tile and its operands fit AVX2's 16 registers. 64-byte
// vectors (one zmm) spilled on the AVX2 hosts of this project's machines, 40x slower there; on
// an AVX-512 host the ymm code loses nothing on Zen 4, which splits zmm work in two anyway.
//
// Threads: the forward splits (b, h, NQB query blocks) tasks, each computed start to end by one
// thread; the backward gives each thread whole heads (b, h), whose dq, dk, dv it alone writes,
// with every sum in a fixed order. Either way every output element is computed by the same
// operations in the same order for any thread count: the same bits. A (b, h) pair is one task
// of the backward, so the backward of a single head (B = NH = 1) runs on one thread.
//
// Measured (float32, 2 threads, this project's shared 2-core AMD EPYC Zen 3 host, AVX2 clone;
// fasttrain bench --kernels attention, interleaved with PyTorch 2.13's CPU flash kernel, whose
// ratio swung with the other tenants' load): forward + backward at (B, NH, T, hs) =
// (16, 4, 128, 64) 2.4-2.5x faster than torch, (4, 12, 1024, 64) 1.6-1.7x, (1, 12, 4096, 64)
// 1.2x. Where the time goes, one thread, quiet: at T = 1024 the forward's two products run at
// ~90% of the FMA peak, its softmax's exp is ~10% of it; at T = 128 the products run at ~65%
// (2 of 3 block pairs straddle the diagonal, and each head's first touch of qkv misses cache),
// and the backward spends ~9% packing, ~9% in its elementwise passes, ~13% writing dqkv.
// Tried and measured without gain (T = 128, one thread): 6 x 2-vector tiles (the 4 x 2 one
// already runs at the FMA peak from L1), key blocks of 32 or 128, summing dq, dk, dv in place in
// dqkv or reading q, k, dout there unpacked, software prefetch, the band's triangle inside the
// 4-row tile (gemm_band).
// NQB = 4 query blocks a forward task (one copy of each key block's v rows per 4 query blocks
// instead of per block; at T = 4096 that copy, of rows 3C apart, was ~11% of the forward): the
// forward ~10-14% faster at T = 4096, ~5% at T = 1024, unchanged at T = 128 (one thread, CPU
// time, minima of interleaved rounds; NQB = 2 and 8 gained less). At T = 4096 (one thread) the
// backward is 92% in its products, which run at ~85% of the micro-kernel's L1 speed, exp 4%.
// Tried later without gain (within the +-4% that the shared machine lets one see, T = 128 to
// 4096): 2 or 4 key blocks a pass over the query blocks in the backward (each query block's
// operands read once for them), the backward of few heads split into parts by key blocks (dq
// summed over the parts after: for balance when the machine's other work delays a thread),
// packing K and V blocks contiguous for the score products (their rows are 3C apart in qkv),
// blocks BQ x BK of 128 x 64, 64 x 128, 128 x 128, 32 x 32, prefetching the next head's rows
// in the backward at T = 128 (5% slower).
//
// Not here: argument validation (the Python front), dropout, attention masks other than causal,
// grouped-query heads, a KV cache. The float64 build runs the same code (for gradient checks).
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "fasttrain.h"
#include "real.h"

#define BQ 64  // queries per block: the vector dimension of the score tiles (a multiple of VL)
#define BK 64  // keys per block
#define NQB 4  // query blocks per task of the forward, sharing each key block's packed v
#define VBYTES 32
#define VL ((int64_t)(VBYTES / sizeof(real)))  // reals per vector: 8 float, 4 double
#define INLINE static inline __attribute__((always_inline))

typedef real vec __attribute__((vector_size(VBYTES)));
// the same vector at any real-aligned address: loads and stores through it are unaligned ones
typedef real uvec __attribute__((vector_size(VBYTES), aligned(sizeof(real)), may_alias));
#define VLOAD(p) (*(const uvec *)(p))
#define VSTORE(p, v) (*(uvec *)(p) = (v))

static int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// ----------------------------------------------------------------------------------------------
// packing: the operands' copies, vector by vector (scalar loops here were a third of the time at
// T = 128: measured 24% of it in the backward's packing loop, 5% in the forward's transpose)

// dst (n, hsp) rows hsp apart = src (n, hs) rows ld apart, then zero to hsp (hsp >= hs)
INLINE void FT_FN(copy_rows)(real *dst, int64_t hsp, const real *src, int64_t ld, int64_t n,
                             int64_t hs) {
    for (int64_t i = 0; i < n; i++) {
        int64_t d = 0;
        for (; d + VL <= hs; d += VL) VSTORE(dst + i * hsp + d, VLOAD(src + i * ld + d));
        for (; d < hs; d++) dst[i * hsp + d] = src[i * ld + d];
        for (; d < hsp; d++) dst[i * hsp + d] = 0;
    }
}

// sum_d x[d] y[d], d < n: lane by lane over whole vectors, the lanes then added in order, the tail
INLINE real FT_FN(dot)(const real *x, const real *y, int64_t n) {
    vec acc = {0};
    int64_t d = 0;
    for (; d + VL <= n; d += VL) acc += VLOAD(x + d) * VLOAD(y + d);
    real sum = 0;
    for (int l = 0; l < VL; l++) sum += acc[l];
    for (; d < n; d++) sum += x[d] * y[d];
    return sum;
}

// The VL x VL transpose of t[0..VL) in registers: t[c] becomes column c (unpack, then shuffle
// pairs, then swap 128-bit halves: the usual AVX sequence, each step a single shuffle).
#if defined(FT_F32)
typedef int32_t ivec __attribute__((vector_size(VBYTES)));
INLINE void transpose_vl(vec t[VL]) {
    vec u[8], w[8];
    for (int r = 0; r < 8; r += 2) {
        u[r] = __builtin_shuffle(t[r], t[r + 1], (ivec){0, 8, 1, 9, 4, 12, 5, 13});
        u[r + 1] = __builtin_shuffle(t[r], t[r + 1], (ivec){2, 10, 3, 11, 6, 14, 7, 15});
    }
    for (int r = 0; r < 8; r += 4)
        for (int h = 0; h < 2; h++) {
            w[r + 2 * h] = __builtin_shuffle(u[r + h], u[r + h + 2],
                                             (ivec){0, 1, 8, 9, 4, 5, 12, 13});
            w[r + 2 * h + 1] = __builtin_shuffle(u[r + h], u[r + h + 2],
                                                 (ivec){2, 3, 10, 11, 6, 7, 14, 15});
        }
    for (int c = 0; c < 4; c++) {
        t[c] = __builtin_shuffle(w[c], w[c + 4], (ivec){0, 1, 2, 3, 8, 9, 10, 11});
        t[c + 4] = __builtin_shuffle(w[c], w[c + 4], (ivec){4, 5, 6, 7, 12, 13, 14, 15});
    }
}
#else
typedef int64_t ivec __attribute__((vector_size(VBYTES)));
INLINE void transpose_vl(vec t[VL]) {
    vec u[4];
    for (int r = 0; r < 4; r += 2) {
        u[r] = __builtin_shuffle(t[r], t[r + 1], (ivec){0, 4, 2, 6});
        u[r + 1] = __builtin_shuffle(t[r], t[r + 1], (ivec){1, 5, 3, 7});
    }
    for (int c = 0; c < 2; c++) {
        t[c] = __builtin_shuffle(u[c], u[c + 2], (ivec){0, 1, 4, 5});
        t[c + 2] = __builtin_shuffle(u[c], u[c + 2], (ivec){2, 3, 6, 7});
    }
}
#endif

// dst (hs, BQ) = src (n, hs) rows ld apart, transposed, columns [n, BQ) zero (n <= BQ)
INLINE void FT_FN(pack_transposed)(real *dst, const real *src, int64_t ld, int64_t n,
                                   int64_t hs) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        int64_t d = 0;
        for (; d + VL <= hs; d += VL) {
            vec t[VL];
            for (int r = 0; r < VL; r++) t[r] = VLOAD(src + (i + r) * ld + d);
            transpose_vl(t);
            for (int c = 0; c < VL; c++) VSTORE(dst + (d + c) * BQ + i, t[c]);
        }
        for (; d < hs; d++)
            for (int64_t r = 0; r < VL; r++) dst[d * BQ + i + r] = src[(i + r) * ld + d];
    }
    for (int64_t d = 0; d < hs; d++)
        for (int64_t r = i; r < BQ; r++) dst[d * BQ + r] = r < n ? src[r * ld + d] : 0;
}

// this thread's index in the team (its slice of `work`); 0 without OpenMP
static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// One R x (NV vectors) tile of  C (=, +=, or = diag(cs) C +)  sum_{s < ns} A(r, s) B[s, :],
// A(r, s) = a[r * ars + s * ass] (any layout: a scalar is broadcast), B rows ldb apart.
// beta = 0: C is overwritten; beta = 1: accumulated, after scaling row r by cs[r] if cs.
INLINE void FT_FN(gemm_tile)(const int R, const int NV, real *c, int64_t ldc, const real *a,
                             int64_t ars, int64_t ass, const real *b, int64_t ldb, int64_t ns,
                             const real *cs, int beta) {
    vec acc[4][2];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) {
            if (beta) {
                acc[r][v] = VLOAD(c + r * ldc + v * VL);
                if (cs) acc[r][v] *= cs[r];
            } else {
                acc[r][v] = (vec){0};
            }
        }
    for (int64_t s = 0; s < ns; s++) {
        vec bv[2];
        for (int v = 0; v < NV; v++) bv[v] = VLOAD(b + s * ldb + v * VL);
        for (int r = 0; r < R; r++) {
            const real ar = a[r * ars + s * ass];
            for (int v = 0; v < NV; v++) acc[r][v] += ar * bv[v];
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) VSTORE(c + r * ldc + v * VL, acc[r][v]);
}

// R rows of C (= or +=, see gemm_tile), columns [j0, nc) (multiples of VL), summing s in
// [lo, hi).
INLINE void FT_FN(gemm_rows)(const int R, real *c, int64_t ldc, const real *a, int64_t ars,
                             int64_t ass, const real *b, int64_t ldb, int64_t j0, int64_t nc,
                             int64_t lo, int64_t hi, const real *cs, int beta) {
    int64_t j = j0;
    for (; j + 2 * VL <= nc; j += 2 * VL)
        FT_FN(gemm_tile)(R, 2, c + j, ldc, a + lo * ass, ars, ass, b + lo * ldb + j, ldb, hi - lo,
                         cs, beta);
    if (j < nc)
        FT_FN(gemm_tile)(R, 1, c + j, ldc, a + lo * ass, ars, ass, b + lo * ldb + j, ldb, hi - lo,
                         cs, beta);
}

INLINE int64_t FT_FN(first_col)(int64_t i, int64_t nc) {  // i clamped to [0, nc], whole vectors
    return (i < 0 ? 0 : i < nc ? i : nc) / VL * VL;
}

// C (nr, nc) (= or +=, see gemm_tile) A (nr, ns) B (ns, nc); nc a multiple of VL. Each element
// of C is one tile lane's sum over s in order: the same bits whichever tile computes it.
// diag (scores of a block on the causal diagonal, rows keys j0 + r, columns queries i0 + i, and
// off = j0 - i0): the columns of row r before r + off, rounded down to whole vectors, are masked
// pairs and are left uncomputed (undefined); the mask overwrites them.
INLINE void FT_FN(gemm)(real *c, int64_t ldc, const real *a, int64_t ars, int64_t ass,
                        const real *b, int64_t ldb, int64_t nr, int64_t nc, int64_t ns,
                        const real *cs, int beta, int diag, int64_t off) {
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) {
        const int64_t j0 = diag ? FT_FN(first_col)(r + off, nc) : 0;
        FT_FN(gemm_rows)(4, c + r * ldc, ldc, a + r * ars, ars, ass, b, ldb, j0, nc, 0, ns,
                         cs ? cs + r : NULL, beta);
    }
    for (; r < nr; r++) {
        const int64_t j0 = diag ? FT_FN(first_col)(r + off, nc) : 0;
        FT_FN(gemm_rows)(1, c + r * ldc, ldc, a + r * ars, ars, ass, b, ldb, j0, nc, 0, ns,
                         cs ? cs + r : NULL, beta);
    }
}

// The s that row r of a diagonal block may sum (see gemm_band), clamped to [0, ns].
INLINE int64_t band_lo(int64_t r, int lower, int64_t off) {
    return lower || r + off < 0 ? 0 : r + off;
}
INLINE int64_t band_hi(int64_t r, int64_t ns, int lower, int64_t off) {
    return !lower || r + off + 1 > ns ? ns : (r + off + 1 > 0 ? r + off + 1 : 0);
}

// As gemm, for a block that straddles the causal diagonal: row r sums only the s that its
// query and key may pair, s < r + off + 1 (lower: rows are queries, s keys) or s >= r + off
// (upper: rows are keys, s queries), so a masked pair enters no sum, not even as 0 * x (a NaN
// or inf in a future token's k or v reaches no earlier token, as in the reference). Four rows
// at a time over the s they all sum, then each row's few others one row at a time; a row with
// none gets only gemm_tile's start (C scaled, zeroed or kept).
INLINE void FT_FN(gemm_band)(real *c, int64_t ldc, const real *a, int64_t ars, int64_t ass,
                             const real *b, int64_t ldb, int64_t nr, int64_t nc, int64_t ns,
                             const real *cs, int beta, int lower, int64_t off) {
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) {
        // the rows' common range: the first row's end (lower), the last row's start (upper)
        const int64_t lo = band_lo(r + 3, lower, off) < ns ? band_lo(r + 3, lower, off) : ns;
        const int64_t hi = band_hi(r, ns, lower, off) > lo ? band_hi(r, ns, lower, off) : lo;
        FT_FN(gemm_rows)(4, c + r * ldc, ldc, a + r * ars, ars, ass, b, ldb, 0, nc, lo, hi,
                         cs ? cs + r : NULL, beta);
        for (int64_t q = r; q < r + 4; q++) {  // then the rest of each row's range, in order
            const int64_t qlo = band_lo(q, lower, off), qhi = band_hi(q, ns, lower, off);
            if (qlo < lo)
                FT_FN(gemm_rows)(1, c + q * ldc, ldc, a + q * ars, ars, ass, b, ldb, 0, nc, qlo,
                                 lo < qhi ? lo : qhi, NULL, 1);
            if (qhi > hi)
                FT_FN(gemm_rows)(1, c + q * ldc, ldc, a + q * ars, ars, ass, b, ldb, 0, nc,
                                 hi > qlo ? hi : qlo, qhi, NULL, 1);
        }
    }
    for (; r < nr; r++) {
        const int64_t lo = band_lo(r, lower, off) < ns ? band_lo(r, lower, off) : ns;
        const int64_t hi = band_hi(r, ns, lower, off) > lo ? band_hi(r, ns, lower, off) : lo;
        FT_FN(gemm_rows)(1, c + r * ldc, ldc, a + r * ars, ars, ass, b, ldb, 0, nc, lo, hi,
                         cs ? cs + r : NULL, beta);
    }
}

int64_t FT_FN(ft_attention_work)(int64_t T, int64_t hs, int backward) {
    const int64_t hsp = round_up(hs, VL), Tp = round_up(T, BQ);
    if (!backward)  // Qt (NQB,hs,BQ), ST (BK,BQ), Vb (BK,hsp), O (NQB,BQ,hsp), m, l, alpha (NQB,BQ)
        return NQB * hs * BQ + BK * BQ + BK * hsp + NQB * BQ * hsp + 3 * NQB * BQ;
    // Qt, dOt (Tp/BQ,hs,BQ); Qp, Kp, dOp, dQ (Tp,hsp); dKb, dVb (BK,hsp); PT, dST (BK,BQ);
    // D, L (Tp)
    return 2 * hs * Tp + 4 * Tp * hsp + 2 * BK * hsp + 2 * BK * BQ + 2 * Tp;
}

// ----------------------------------------------------------------------------------------------
// forward: one task, the NQB query blocks from query i0 on, up to query iend, of one head
//   o (T,hs) rows ldo apart  =  the blocks' output rows;  lse (T,)  =  their log-sum-exps
//   q, k, v (T,hs) rows ld apart (the head's columns of qkv);  work: ft_attention_work(T, hs, 0)
// Each key block's v rows are packed once for the task's query blocks (and its k rows are read
// from cache by the second): at T = 4096 the copy was ~11% of the forward with one block a task.
FT_CLONES static void FT_FN(forward_blocks)(real *o, int64_t ldo, real *lse, const real *q,
                                            const real *k, const real *v, int64_t ld, int64_t T,
                                            int64_t hs, int64_t i0, int64_t iend, int causal,
                                            real scale, real *work) {
    const int64_t hsp = round_up(hs, VL);
    real *Qt0 = work;                 // (NQB, hs, BQ)  q^T of each query block, zero past iend
    real *ST = Qt0 + NQB * hs * BQ;   // (BK, BQ)  scores, then probabilities, transposed
    real *Vb = ST + BK * BQ;          // (BK, hsp) the key block's v rows, zero past hs
    real *O0 = Vb + BK * hsp;         // (NQB, BQ, hsp) unnormalised output rows
    real *m0 = O0 + NQB * BQ * hsp;   // (NQB, BQ) running max, sum, rescale factor
    real *l0 = m0 + NQB * BQ, *alpha0 = l0 + NQB * BQ;

    const int64_t nb = (iend - i0 + BQ - 1) / BQ;  // query blocks in this task, <= NQB
    for (int64_t b = 0; b < nb; b++) {
        const int64_t ib = i0 + b * BQ, nq = iend - ib < BQ ? iend - ib : BQ;
        FT_FN(pack_transposed)(Qt0 + b * hs * BQ, q + ib * ld, ld, nq, hs);
    }
    for (int64_t i = 0; i < NQB * BQ; i++) {
        m0[i] = -INFINITY;
        l0[i] = 0;
    }
    const int64_t kend = causal ? iend : T;  // the keys past iend are all masked
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        const int64_t nk = kend - j0 < BK ? kend - j0 : BK;
        // the pad columns of V are zeroed: they feed only O's pad columns, but not as garbage
        FT_FN(copy_rows)(Vb, hsp, v + j0 * ld, ld, nk, hs);
        for (int64_t b = 0; b < nb; b++) {
            const int64_t ib = i0 + b * BQ, nq = iend - ib < BQ ? iend - ib : BQ;
            if (causal && j0 >= ib + nq) continue;  // this block's keys end before j0
            const int64_t nkb = causal && ib + nq - j0 < nk ? ib + nq - j0 : nk;
            real *Qt = Qt0 + b * hs * BQ, *O = O0 + b * BQ * hsp;
            real *m = m0 + b * BQ, *l = l0 + b * BQ, *alpha = alpha0 + b * BQ;
            // S^T (nkb, BQ) = scale (K_j Q_b^T): scaled after the product, as the reference
            // does (scale 0 times an overflowed q.k is NaN there too)
            const int masked = causal && j0 + nkb - 1 > ib;  // the block straddles the diagonal
            FT_FN(gemm)(ST, BQ, k + j0 * ld, ld, 1, Qt, BQ, nkb, BQ, hs, NULL, 0, masked, j0 - ib);
            // in the same sweep, the new running max m' (alpha holds it for now); a NaN score
            // is skipped here and propagates through exp below
            // (on the diagonal, the whole vectors of a row before its first query are masked
            // pairs: skipped here and below, and never read, as gemm_band sums only the pairs
            // that it may)
            for (int64_t i = 0; i < BQ; i++) alpha[i] = m[i];
            for (int64_t kk = 0; kk < nkb; kk++) {
                real *s = ST + kk * BQ;
                const int64_t i1 = masked ? FT_FN(first_col)(j0 + kk - ib, BQ) : 0;
#pragma omp simd
                for (int64_t i = i1; i < BQ; i++) {
                    const real x = masked && j0 + kk > ib + i ? -INFINITY : scale * s[i];
                    s[i] = x;
                    alpha[i] = x > alpha[i] ? x : alpha[i];
                }
            }
            // P = exp(S - m'), l = l exp(m - m') + rowsum P
            real rowsum[BQ];
            for (int64_t i = 0; i < BQ; i++) rowsum[i] = 0;
            for (int64_t kk = 0; kk < nkb; kk++) {
                real *s = ST + kk * BQ;
                const int64_t i1 = masked ? FT_FN(first_col)(j0 + kk - ib, BQ) : 0;
#pragma omp simd
                for (int64_t i = i1; i < BQ; i++) {
                    s[i] = EXP(s[i] - alpha[i]);
                    rowsum[i] += s[i];
                }
            }
#pragma omp simd
            for (int64_t i = 0; i < BQ; i++) {
                const real mi = alpha[i];
                alpha[i] = EXP(m[i] - mi);  // 0 on the first block (m = -inf)
                m[i] = mi;
                l[i] = l[i] * alpha[i] + rowsum[i];
            }
            // O = diag(alpha) O + P V_j, overwritten by the first block (O starts undefined)
            if (masked)
                FT_FN(gemm_band)(O, hsp, ST, 1, BQ, Vb, hsp, nq, hsp, nkb, alpha, j0 > 0, 1,
                                 ib - j0);
            else
                FT_FN(gemm)(O, hsp, ST, 1, BQ, Vb, hsp, nq, hsp, nkb, alpha, j0 > 0, 0, 0);
        }
    }
    for (int64_t b = 0; b < nb; b++) {
        const int64_t ib = i0 + b * BQ, nq = iend - ib < BQ ? iend - ib : BQ;
        const real *O = O0 + b * BQ * hsp, *m = m0 + b * BQ, *l = l0 + b * BQ;
        for (int64_t i = 0; i < nq; i++) {
            const real inv = 1 / l[i];
            for (int64_t d = 0; d < hs; d++) o[(ib + i) * ldo + d] = O[i * hsp + d] * inv;
            lse[ib + i] = m[i] + LOG(l[i]);
        }
    }
}

int FT_FN(ft_attention_forward)(real *out, real *lse, real *work, const real *qkv, int64_t B,
                                int64_t T, int64_t C, int64_t NH, int causal, double scale,
                                int nthreads) {
    // out (B,T,C) =, lse (B,NH,T) =, work (nthreads, ft_attention_work(T, hs, 0)), qkv (B,T,3C)
    const int64_t hs = C / NH, tq = NQB * BQ, ntq = (T + tq - 1) / tq, BH = B * NH;
    const int64_t ntasks = BH * ntq, wsize = FT_FN(ft_attention_work)(T, hs, 0);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && ntasks > 1)
    {
        real *w = work + thread_id() * wsize;
        // head by head, so that the threads share one head's k and v while it is in cache
        // (measured on the loaded 2-core machine: 1.3x faster at T = 1024 and 4096 than taking
        // every head's last block first; within noise when the machine was quiet), and in each
        // head the last query blocks first: in a causal head they see the most keys
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntasks; t++) {
            const int64_t bh = t / ntq, qt = ntq - 1 - t % ntq, b = bh / NH, h = bh % NH;
            const real *x = qkv + b * T * 3 * C + h * hs;  // this head's q columns
            const int64_t i0 = qt * tq, iend = T - i0 < tq ? T : i0 + tq;
            FT_FN(forward_blocks)(out + b * T * C + h * hs, C, lse + bh * T, x, x + C, x + 2 * C,
                                  3 * C, T, hs, i0, iend, causal, (real)scale, w);
        }
    }
    return 0;
}

// ----------------------------------------------------------------------------------------------
// backward: one head, start to end
//   dq, dk, dv (T,hs) rows ld apart  =  the head's columns of dqkv
//   q, k, v (T,hs) rows ld apart;  o, dout (T,hs) rows ldo apart;  lse (T,)
//   work: ft_attention_work(T, hs, 1)
FT_CLONES static void FT_FN(backward_head)(real *dq, real *dk, real *dv, const real *q,
                                           const real *k, const real *v, int64_t ld,
                                           const real *o, const real *dout, int64_t ldo,
                                           const real *lse, int64_t T, int64_t hs, int causal,
                                           real scale, real *work) {
    const int64_t hsp = round_up(hs, VL), Tp = round_up(T, BQ);
    // q^T and dout^T by query block, each (hs, BQ) contiguous: as one (hs, Tp) matrix, the
    // rows of a block would be Tp reals apart, 4 KiB or a multiple of it for T = 1024, 4096,
    // all in the same few sets of L1 (measured: the backward ran at 0.65x of torch's speed at
    // T = 4096 before this layout)
    real *Qt = work;              // (Tp/BQ, hs, BQ)  q^T, zero past T
    real *dOt = Qt + hs * Tp;     // (Tp/BQ, hs, BQ)  dout^T, zero past T
    real *Qp = dOt + hs * Tp;     // (Tp, hsp) q, zero past hs (rows past T unused)
    real *Kp = Qp + Tp * hsp;     // (Tp, hsp) k
    real *dOp = Kp + Tp * hsp;    // (Tp, hsp) dout
    real *dQ = dOp + Tp * hsp;    // (Tp, hsp) dq, accumulated over the key blocks
    real *dKb = dQ + Tp * hsp;    // (BK, hsp) the key block's dk
    real *dVb = dKb + BK * hsp;   // (BK, hsp) the key block's dv
    real *PT = dVb + BK * hsp;    // (BK, BQ)  S^T, then P^T
    real *dST = PT + BK * BQ;     // (BK, BQ)  dP^T, then dS^T (scale folded in)
    real *D = dST + BK * BQ;      // (Tp,)     rowsum(dout * out)
    real *L = D + Tp;             // (Tp,)     lse, 0 past T

    // zero what is summed into (dQ) and the pads, which feed only lanes never read back (the
    // queries past T, the columns past hs), so that no garbage goes through them either; a
    // memset of the whole work cost ~10% of the backward at T = 128
    memset(dQ, 0, (size_t)(Tp * hsp) * sizeof(real));
    for (int64_t i0 = 0; i0 < T; i0 += BQ) {
        const int64_t nq = T - i0 < BQ ? T - i0 : BQ;
        FT_FN(pack_transposed)(Qt + i0 * hs, q + i0 * ld, ld, nq, hs);
        FT_FN(pack_transposed)(dOt + i0 * hs, dout + i0 * ldo, ldo, nq, hs);
    }
    FT_FN(copy_rows)(Qp, hsp, q, ld, T, hs);
    FT_FN(copy_rows)(Kp, hsp, k, ld, T, hs);
    FT_FN(copy_rows)(dOp, hsp, dout, ldo, T, hs);
    for (int64_t i = 0; i < T; i++) {
        D[i] = FT_FN(dot)(dout + i * ldo, o + i * ldo, hs);
        L[i] = lse[i];
    }
    for (int64_t i = T; i < Tp; i++) D[i] = L[i] = 0;
    for (int64_t j0 = 0; j0 < T; j0 += BK) {
        const int64_t nk = T - j0 < BK ? T - j0 : BK;
        memset(dKb, 0, (size_t)(2 * BK * hsp) * sizeof(real));  // dKb and dVb
        for (int64_t i0 = causal ? j0 / BQ * BQ : 0; i0 < T; i0 += BQ) {
            const int64_t nq = T - i0 < BQ ? T - i0 : BQ;
            const int masked = causal && j0 + nk - 1 > i0;
            // S^T (nk, BQ) = scale (K_j Q_i^T), then P^T = exp(S^T - lse), 0 where masked
            FT_FN(gemm)(PT, BQ, k + j0 * ld, ld, 1, Qt + i0 * hs, BQ, nk, BQ, hs, NULL, 0, masked,
                        j0 - i0);
            // (on the diagonal, the whole vectors of masked pairs are skipped here and below:
            // gemm_band never reads them)
            for (int64_t kk = 0; kk < nk; kk++) {
                real *p = PT + kk * BQ;
                const real *Li = L + i0;
                const int64_t i1 = masked ? FT_FN(first_col)(j0 + kk - i0, BQ) : 0;
#pragma omp simd
                for (int64_t i = i1; i < BQ; i++) {
                    const real e = EXP(scale * p[i] - Li[i]);
                    p[i] = masked && j0 + kk > i0 + i ? 0 : e;
                }
            }
            // dV_j += P^T dO_i  (sum over the block's nq queries)
            if (masked)
                FT_FN(gemm_band)(dVb, hsp, PT, BQ, 1, dOp + i0 * hsp, hsp, nk, hsp, nq, NULL, 1,
                                 0, j0 - i0);
            else
                FT_FN(gemm)(dVb, hsp, PT, BQ, 1, dOp + i0 * hsp, hsp, nk, hsp, nq, NULL, 1, 0, 0);
            // dP^T (nk, BQ) = V_j dO_i^T, then dS^T = scale P^T (dP^T - D), 0 where masked
            FT_FN(gemm)(dST, BQ, v + j0 * ld, ld, 1, dOt + i0 * hs, BQ, nk, BQ, hs, NULL, 0, masked,
                        j0 - i0);
            for (int64_t kk = 0; kk < nk; kk++) {
                real *g = dST + kk * BQ;
                const real *p = PT + kk * BQ, *Di = D + i0;
                const int64_t i1 = masked ? FT_FN(first_col)(j0 + kk - i0, BQ) : 0;
#pragma omp simd
                for (int64_t i = i1; i < BQ; i++) {
                    const real ds = scale * p[i] * (g[i] - Di[i]);
                    g[i] = masked && j0 + kk > i0 + i ? 0 : ds;
                }
            }
            // dQ_i += dS K_j;  dK_j += dS^T Q_i
            if (masked) {
                FT_FN(gemm_band)(dQ + i0 * hsp, hsp, dST, 1, BQ, Kp + j0 * hsp, hsp, nq, hsp, nk,
                                 NULL, 1, 1, i0 - j0);
                FT_FN(gemm_band)(dKb, hsp, dST, BQ, 1, Qp + i0 * hsp, hsp, nk, hsp, nq, NULL, 1,
                                 0, j0 - i0);
            } else {
                FT_FN(gemm)(dQ + i0 * hsp, hsp, dST, 1, BQ, Kp + j0 * hsp, hsp, nq, hsp, nk,
                            NULL, 1, 0, 0);
                FT_FN(gemm)(dKb, hsp, dST, BQ, 1, Qp + i0 * hsp, hsp, nk, hsp, nq, NULL, 1, 0, 0);
            }
        }
        for (int64_t kk = 0; kk < nk; kk++) {
            memcpy(dk + (j0 + kk) * ld, dKb + kk * hsp, (size_t)hs * sizeof(real));
            memcpy(dv + (j0 + kk) * ld, dVb + kk * hsp, (size_t)hs * sizeof(real));
        }
    }
    for (int64_t i = 0; i < T; i++) memcpy(dq + i * ld, dQ + i * hsp, (size_t)hs * sizeof(real));
}

int FT_FN(ft_attention_backward)(real *dqkv, real *work, const real *qkv, const real *out,
                                 const real *lse, const real *dout, int64_t B, int64_t T,
                                 int64_t C, int64_t NH, int causal, double scale, int nthreads) {
    // dqkv (B,T,3C) =, work (nthreads, ft_attention_work(T, hs, 1)), qkv (B,T,3C),
    // out (B,T,C), lse (B,NH,T), dout (B,T,C)
    const int64_t hs = C / NH, BH = B * NH;
    const int64_t wsize = FT_FN(ft_attention_work)(T, hs, 1);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && BH > 1)
    {
        real *w = work + thread_id() * wsize;
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < BH; bh++) {
            const int64_t b = bh / NH, h = bh % NH;
            const real *x = qkv + b * T * 3 * C + h * hs;
            real *dx = dqkv + b * T * 3 * C + h * hs;
            const int64_t oo = b * T * C + h * hs;
            FT_FN(backward_head)(dx, dx + C, dx + 2 * C, x, x + C, x + 2 * C, 3 * C, out + oo,
                                 dout + oo, C, lse + bh * T, T, hs, causal, (real)scale, w);
        }
    }
    return 0;
}
