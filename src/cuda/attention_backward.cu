/* The attention backward (osp_cuda_attention_backward) in the FlashAttention-2 style, on the
 * mma.sync building blocks of the forward's fa2_kernel (flash.cuh). The softmax weights are
 * recomputed tile by tile from q, k and the forward's log-sum-exp, P = e^(s − lse), never an
 * Nq × Nk matrix; with δ_i = Σ_d dout·out and dS = P ∘ (dout·vᵀ − δ):
 *   dv += Pᵀ·dout,  dk += scale·dSᵀ·q,  dq += scale·dS·k.
 *
 * Three kernels, in stream order:
 *
 * - grad_prepare_kernel: per query, δ (f32, from the bf16 out and dout) and lse·log2(e) (+inf for
 *   a query with every key masked, so that its weights 2^(s·sl2 − lse2) are 0), in the caller's
 *   scratch: two f32 arrays [B, heads, Nq_pad], Nq_pad = Nq rounded up to 128, zero past Nq.
 *
 * - grad_kernel<D, KEYS = true>: one block per 64 keys of one (key row, head); dk and dv of its
 *   keys stay in registers (f32) while it walks every 64-query tile of every query row
 *   b ≡ key row mod Bk, in order. Each warp owns 16 keys and computes the transposed products
 *   Sᵀ = K·Qᵀ and dPᵀ = V·doutᵀ, so that Pᵀ and dSᵀ come out of the accumulators already in the
 *   A-fragment layout of dv += Pᵀ·dout and dk += dSᵀ·q: no shared-memory round trip. The
 *   per-query lse2 and δ of a tile travel with its q and dout rows.
 *
 * - grad_kernel<D, KEYS = false>: one block per 64 queries of one (query row, head); dq in
 *   registers while it walks every 64-key tile: S = Q·Kᵀ, dP = dout·Vᵀ, dq += dS·k, the
 *   forward's loop with a second product.
 *
 * dq is not accumulated by the key blocks with atomics (FlashAttention-2's way, whose order of
 * additions varies from run to run): its own kernel recomputes S and dP instead, 7 block products
 * per tile pair instead of 5, and every gradient element has one owner that adds its terms in a
 * fixed order, so that the bits are the same on every run (a resumed training run is bit-identical
 * to an uninterrupted one). Threads: 4 warps a block; K/V (or Q/dout) tiles double-buffered through
 * cp.async; ~97 KiB of shared memory at D = 128, two blocks a multiprocessor.
 *
 * Padding: rows past Nq or Nk are zero-filled by the copies, so a missing query contributes
 * P·0 to dv and (P·(0 − 0))·q to dk; a masked or missing key gets P = 0 in both kernels; rows
 * past the end are never stored. A gradient is read, added to and written once, at the end. */
#include <math.h>
#include <stdint.h>

#include "cuda/flash.cuh"

namespace {

using namespace flash;

/* lse2 and δ rows hold Nq rounded up to this many queries, so that a tile of queries is whole
 * 16-byte pieces inside the row. */
constexpr int kQueryPad = 128;

struct GradParams {
  const bf16 *q, *k, *v, *out, *dout;
  const uint8_t *mask; /* [B, Nk] or NULL */
  const float *lse;    /* [B, heads, Nq], natural log */
  float *lse2, *delta; /* scratch [B, heads, nq_pad] */
  void *dq, *dk, *dv;  /* NULL: not wanted */
  osp_dtype dq_dtype, dk_dtype, dv_dtype;
  int nq, nk, nq_pad, heads, batch, kv_batch;
  float sl2;   /* scale·log2(e), any sign */
  float scale;
};

/* ---- δ and lse2 ---------------------------------------------------------------------------- */

/* A group of D/8 threads per (b, h, query) entry of the scratch rows, 16 bytes of dout and out
 * each, the dot product reduced inside the group. */
template <int D>
__global__ void __launch_bounds__(256) grad_prepare_kernel(const GradParams p, int64_t entries) {
  constexpr int G = D / 8;
  const int64_t entry = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / G;
  const int part = threadIdx.x % G;
  const bool inside = entry < entries;
  const int64_t row = inside ? entry / p.nq_pad : 0; /* b·heads + h */
  const int i = inside ? (int)(entry % p.nq_pad) : 0;
  const bool query = inside && i < p.nq;
  float sum = 0.0f;
  if (query) {
    const int64_t b = row / p.heads, h = row % p.heads;
    const int64_t at = ((b * p.nq + i) * p.heads + h) * D + part * 8;
    const uint4 x = *reinterpret_cast<const uint4 *>(p.dout + at);
    const uint4 y = *reinterpret_cast<const uint4 *>(p.out + at);
    const uint32_t xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      sum = fmaf(__uint_as_float(xs[w] << 16), __uint_as_float(ys[w] << 16), sum);
      sum = fmaf(__uint_as_float(xs[w] & 0xffff0000u), __uint_as_float(ys[w] & 0xffff0000u), sum);
    }
  }
#pragma unroll
  for (int step = G / 2; step > 0; step /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, step);
  if (inside && part == 0) {
    float lse2 = 0.0f;
    if (query) {
      const float lse = p.lse[row * p.nq + i];
      lse2 = lse == -INFINITY ? INFINITY : lse * kLog2e;
    }
    p.lse2[entry] = lse2;
    p.delta[entry] = sum;
  }
}

/* ---- The gradient kernels ------------------------------------------------------------------ */

template <int D>
struct GradTiles {
  static constexpr int WARPS = 4, THREADS = WARPS * 32;
  static constexpr int ROWS = WARPS * 16; /* the block's own rows: keys (KEYS) or queries */
  static constexpr int COLS = 64;         /* the rows of each tile it walks */
  static constexpr uint32_t TILE_X = ROWS * D * 2, TILE_Y = COLS * D * 2;
  static constexpr uint32_t VEC = COLS * 4;                 /* lse2 or δ of a tile's queries */
  static constexpr uint32_t STAGE = 2 * TILE_Y + 2 * VEC;   /* Y1, Y2, lse2, δ */
  static constexpr uint32_t SMEM = 2 * TILE_X + 2 * STAGE;  /* X1, X2, two stages */
};

/* gradient[base + c], gradient[base + c + 1] += a, b (bf16 or f32), rounded once. */
__device__ __forceinline__ void add_pair(void *grad, osp_dtype dtype, int64_t at, float a, float b) {
  if (dtype == OSP_BF16) {
    __nv_bfloat162 *x = reinterpret_cast<__nv_bfloat162 *>((bf16 *)grad + at);
    const float2 old = __bfloat1622float2(*x);
    *x = __floats2bfloat162_rn(old.x + a, old.y + b);
  } else {
    float2 *x = reinterpret_cast<float2 *>((float *)grad + at);
    const float2 old = *x;
    *x = make_float2(old.x + a, old.y + b);
  }
}

/* Adds a warp's accumulators (rows g and g + 8 of its 16, columns 8·dt + 2t + {0, 1}), times
 * factor, to rows of a [N, heads, D] gradient slice (row stride rs elements) below n. */
template <int D>
__device__ __forceinline__ void add_rows(void *grad, osp_dtype dtype, int64_t base, int64_t rs, int row0,
                                         int n, const float (&acc)[1][D / 8][4], float factor, int g,
                                         int t) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + g + 8 * r;
    if (row >= n) continue;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt)
      add_pair(grad, dtype, base + row * rs + dt * 8 + 2 * t, acc[0][dt][2 * r] * factor,
               acc[0][dt][2 * r + 1] * factor);
  }
}

/* KEYS: block (key tile, head, key row); !KEYS: block (query tile, head, query row). X1, X2 are
 * the block's own rows (K, V or Q, dout); each tile j brings Y1, Y2 (Q, dout or K, V). */
template <int D, bool KEYS>
__global__ void __launch_bounds__(GradTiles<D>::THREADS) grad_kernel(const GradParams p) {
  typedef GradTiles<D> T;
  constexpr int THREADS = T::THREADS, ROWS = T::ROWS, COLS = T::COLS, NT = COLS / 8;

  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sX1 = smem_u32(smem), sX2 = sX1 + T::TILE_X, sStages = sX2 + T::TILE_X;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int r0 = blockIdx.x * ROWS, h = blockIdx.y, z = blockIdx.z; /* z: key row or query row */
  const int wrow = warp * 16;
  const int64_t rs = (int64_t)p.heads * D;
  const int nrows = KEYS ? p.nk : p.nq;
  const int64_t own = ((int64_t)z * nrows * p.heads + h) * D; /* row 0 of this (row, head) */
  const bf16 *x1 = (KEYS ? p.k : p.q) + own, *x2 = (KEYS ? p.v : p.dout) + own;
  /* KEYS: the tiles are every query tile of every query row b ≡ z mod Bk, in order */
  const int per_row = KEYS ? (p.nq + COLS - 1) / COLS : (p.nk + COLS - 1) / COLS;
  const int tiles = KEYS ? per_row * (p.batch / p.kv_batch) : per_row;

  /* Tile j's Y1, Y2 (and for KEYS its queries' lse2, δ) into a stage. */
  auto load_tile = [&](int j, uint32_t stage) {
    if constexpr (KEYS) {
      const int b = z + j / per_row * p.kv_batch, y0 = j % per_row * COLS;
      const int64_t rows = ((int64_t)b * p.nq * p.heads + h) * D;
      load_rows<D, COLS, THREADS>(stage, p.q + rows, rs, y0, p.nq, tid);
      load_rows<D, COLS, THREADS>(stage + T::TILE_Y, p.dout + rows, rs, y0, p.nq, tid);
      constexpr int PIECES = (int)T::VEC / 16;
      if (tid < 2 * PIECES) {
        const float *vec = (tid < PIECES ? p.lse2 : p.delta) + ((int64_t)b * p.heads + h) * p.nq_pad + y0;
        cp_async16(stage + 2 * T::TILE_Y + (uint32_t)tid * 16, vec + (tid % PIECES) * 4, 16);
      }
    } else {
      const int64_t rows = ((int64_t)(z % p.kv_batch) * p.nk * p.heads + h) * D;
      load_rows<D, COLS, THREADS>(stage, p.k + rows, rs, j * COLS, p.nk, tid);
      load_rows<D, COLS, THREADS>(stage + T::TILE_Y, p.v + rows, rs, j * COLS, p.nk, tid);
    }
  };

  load_rows<D, ROWS, THREADS>(sX1, x1, rs, r0, nrows, tid);
  load_rows<D, ROWS, THREADS>(sX2, x2, rs, r0, nrows, tid);
  load_tile(0, sStages);
  cp_async_commit();

  const FragOffsets<D> f(lane, wrow);
  float acc0[1][D / 8][4];                /* dk (KEYS) or dq, before the scale */
  float acc1[1][KEYS ? D / 8 : 1][4];     /* dv (KEYS) */
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    acc0[0][dt][0] = acc0[0][dt][1] = acc0[0][dt][2] = acc0[0][dt][3] = 0.0f;
    if constexpr (KEYS) acc1[0][dt][0] = acc1[0][dt][1] = acc1[0][dt][2] = acc1[0][dt][3] = 0.0f;
  }
  /* !KEYS: lse2 and δ of the thread's rows g, g + 8 (inside the padded row: r0 + 64 ≤ Nq_pad).
   * KEYS: whether its keys g, g + 8 exist and are unmasked for the current query row. */
  float row_lse2[2] = {0.0f, 0.0f}, row_delta[2] = {0.0f, 0.0f};
  bool key_ok[2] = {false, false};
  if constexpr (!KEYS) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t at = ((int64_t)z * p.heads + h) * p.nq_pad + r0 + wrow + g + 8 * r;
      row_lse2[r] = p.lse2[at];
      row_delta[r] = p.delta[at];
    }
  }
  const bool want_dk = !KEYS || p.dk != nullptr, want_dv = KEYS && p.dv != nullptr;

  for (int j = 0; j < tiles; ++j) {
    const uint32_t stage = sStages + (uint32_t)(j & 1) * T::STAGE;
    cp_async_wait<0>();
    __syncthreads(); /* tile j is in; every warp is done with tile j − 1's stage */
    if (j + 1 < tiles) load_tile(j + 1, sStages + (uint32_t)((j + 1) & 1) * T::STAGE);
    cp_async_commit();

    /* s = X1·Y1ᵀ (scores, or their transpose), ds = X2·Y2ᵀ (dP, or its transpose) */
    float s[1][NT][4], ds[1][NT][4];
    product_xyt<D, 1, NT>(s, sX1, stage, f);
    product_xyt<D, 1, NT>(ds, sX2, stage + T::TILE_Y, f);

    /* s ← P = 2^(s·sl2 − lse2) (0 for a masked or missing key), ds ← dS = P ∘ (dP − δ) */
    if constexpr (KEYS) {
      if (j % per_row == 0) {
        const int b = z + j / per_row * p.kv_batch;
        const uint8_t *mask_row = p.mask ? p.mask + (int64_t)b * p.nk : nullptr;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int key = r0 + wrow + g + 8 * r;
          key_ok[r] = key < p.nk && (mask_row == nullptr || mask_row[key] != 0);
        }
      }
      const float *lse2 = reinterpret_cast<const float *>(smem + (stage - sX1) + 2 * T::TILE_Y);
      const float *delta = lse2 + COLS;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const float2 l2 = *reinterpret_cast<const float2 *>(lse2 + nt * 8 + 2 * t);
        const float2 dl = *reinterpret_cast<const float2 *>(delta + nt * 8 + 2 * t);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float pe = key_ok[e >> 1] ? ex2(fmaf(s[0][nt][e], p.sl2, -(e & 1 ? l2.y : l2.x))) : 0.0f;
          s[0][nt][e] = pe;
          ds[0][nt][e] = pe * (ds[0][nt][e] - (e & 1 ? dl.y : dl.x));
        }
      }
      if (want_dv) product_pz<D, 1, COLS / 16>(acc1, s, stage + T::TILE_Y, f); /* dv += Pᵀ·dout */
      if (want_dk) product_pz<D, 1, COLS / 16>(acc0, ds, stage, f);            /* dk += dSᵀ·q */
    } else {
      const uint8_t *mask_row = p.mask ? p.mask + (int64_t)z * p.nk : nullptr;
      const uint32_t word = key_word<COLS>(mask_row, j * COLS, p.nk, lane);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[0][nt][e] = ex2(fmaf(s[0][nt][e], p.sl2, -row_lse2[e >> 1]));
      if (!all_keys_valid<COLS>(word)) mask_scores<1, NT, COLS>(s, word, t, 0.0f);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) ds[0][nt][e] = s[0][nt][e] * (ds[0][nt][e] - row_delta[e >> 1]);
      product_pz<D, 1, COLS / 16>(acc0, ds, stage, f); /* dq += dS·k */
    }
  }

  if constexpr (KEYS) {
    if (want_dk) add_rows<D>(p.dk, p.dk_dtype, own, rs, r0 + wrow, nrows, acc0, p.scale, g, t);
    if (want_dv) add_rows<D>(p.dv, p.dv_dtype, own, rs, r0 + wrow, nrows, acc1, 1.0f, g, t);
  } else {
    add_rows<D>(p.dq, p.dq_dtype, own, rs, r0 + wrow, nrows, acc0, p.scale, g, t);
  }
}

/* ---- Host side ---------------------------------------------------------------------------- */

template <int D>
osp_status launch_gradients(const GradParams &p) {
  typedef GradTiles<D> T;
  const int64_t entries = (int64_t)p.batch * p.heads * p.nq_pad;
  const int64_t threads = entries * (D / 8);
  grad_prepare_kernel<D><<<(unsigned)((threads + 255) / 256), 256, 0, osp_cuda_stream()>>>(p, entries);
  OSP_TRY(osp_cuda_launched("attention_backward: delta"));
  static bool configured = false;
  if (!configured) {
    OSP_CUDA_TRY("attention_backward: shared memory limit",
                 cudaFuncSetAttribute(grad_kernel<D, true>, cudaFuncAttributeMaxDynamicSharedMemorySize, T::SMEM));
    OSP_CUDA_TRY("attention_backward: shared memory limit",
                 cudaFuncSetAttribute(grad_kernel<D, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, T::SMEM));
    configured = true;
  }
  if (p.dk || p.dv) {
    const dim3 grid((unsigned)((p.nk + T::ROWS - 1) / T::ROWS), (unsigned)p.heads, (unsigned)p.kv_batch);
    grad_kernel<D, true><<<grid, T::THREADS, T::SMEM, osp_cuda_stream()>>>(p);
    OSP_TRY(osp_cuda_launched("attention_backward: dk, dv (mma.sync)"));
  }
  if (p.dq) {
    const dim3 grid((unsigned)((p.nq + T::ROWS - 1) / T::ROWS), (unsigned)p.heads, (unsigned)p.batch);
    grad_kernel<D, false><<<grid, T::THREADS, T::SMEM, osp_cuda_stream()>>>(p);
    OSP_TRY(osp_cuda_launched("attention_backward: dq (mma.sync)"));
  }
  return OSP_OK;
}

int64_t padded_queries(int64_t queries) { return (queries + kQueryPad - 1) / kQueryPad * kQueryPad; }

}  // namespace

extern "C" size_t osp_cuda_attention_backward_scratch_bytes(int64_t batch, int64_t queries, int64_t heads) {
  if (batch <= 0 || queries <= 0 || heads <= 0) return 0;
  return 2 * sizeof(float) * (size_t)(batch * heads * padded_queries(queries));
}

extern "C" osp_status osp_cuda_attention_backward(const void *q, const void *k, const void *v,
                                                  const uint8_t *key_mask, float scale, const void *out,
                                                  const float *lse, const void *dout, void *dq,
                                                  osp_dtype dq_dtype, void *dk, osp_dtype dk_dtype, void *dv,
                                                  osp_dtype dv_dtype, void *scratch,
                                                  osp_cuda_attention_shape shape) {
  bool empty = false;
  OSP_TRY(flash_check_shape("osp_cuda_attention_backward", shape, false, &empty));
  if (empty || shape.keys == 0 || (!dq && !dk && !dv)) return OSP_OK; /* nothing to add */
  const void *grads[3] = {dq, dk, dv};
  const osp_dtype dtypes[3] = {dq_dtype, dk_dtype, dv_dtype};
  for (int i = 0; i < 3; i++)
    if (grads[i] && dtypes[i] != OSP_BF16 && dtypes[i] != OSP_F32)
      return osp_fail(OSP_ERR_UNSUPPORTED, "osp_cuda_attention_backward: gradients must be bf16 or f32, found %s",
                      osp_dtype_name(dtypes[i]));
  if (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)out | (uintptr_t)dout | (uintptr_t)dq |
       (uintptr_t)dk | (uintptr_t)dv | (uintptr_t)scratch) %
          16 !=
      0)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "osp_cuda_attention_backward: q, k, v, out, dout, dq, dk, dv and scratch must be "
                    "16-byte aligned");
  if (!scratch)
    return osp_fail(OSP_ERR_ARGUMENT, "osp_cuda_attention_backward: scratch: missing (NULL), expected %zu bytes",
                    osp_cuda_attention_backward_scratch_bytes(shape.batch, shape.queries, shape.heads));

  GradParams p;
  p.q = (const bf16 *)q, p.k = (const bf16 *)k, p.v = (const bf16 *)v;
  p.out = (const bf16 *)out, p.dout = (const bf16 *)dout;
  p.mask = key_mask, p.lse = lse;
  p.nq_pad = (int)padded_queries(shape.queries);
  p.lse2 = (float *)scratch;
  p.delta = p.lse2 + shape.batch * shape.heads * p.nq_pad;
  p.dq = dq, p.dk = dk, p.dv = dv;
  p.dq_dtype = dq_dtype, p.dk_dtype = dk_dtype, p.dv_dtype = dv_dtype;
  p.nq = (int)shape.queries, p.nk = (int)shape.keys, p.heads = (int)shape.heads;
  p.batch = (int)shape.batch, p.kv_batch = (int)shape.kv_batch;
  p.sl2 = scale * kLog2e, p.scale = scale;
  switch (shape.head_dim) {
    case 32: return launch_gradients<32>(p);
    case 64: return launch_gradients<64>(p);
    default: return launch_gradients<128>(p);
  }
}
