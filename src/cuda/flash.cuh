/* What the attention kernels share (attention.cu: the forward; attention_backward.cu: the
 * backward): the mma.sync-level building blocks of a FlashAttention-2-style kernel on sm_80 or
 * later. cp.async copies of rows into XOR-swizzled shared-memory tiles, ldmatrix fragments,
 * mma.sync m16n8k16 (bf16 in, f32 accumulate), ex2.approx, key validity (mask and the end of the
 * keys), and the two block products every such kernel makes: S = X·Yᵀ with X the warp's own rows
 * and Y a tile of rows, and C += P·Z with P in registers (the score accumulators as A fragments)
 * and Z a tile read transposed. Internal to src/cuda/. */
#ifndef OSP_CUDA_FLASH_CUH
#define OSP_CUDA_FLASH_CUH

#include <math.h>
#include <stdint.h>

#include "cuda/common.cuh"

namespace flash {

typedef __nv_bfloat16 bf16;

constexpr float kLog2e = 1.4426950408889634f;

/* ---- Device helpers ---------------------------------------------------------------------- */

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

/* c[16x8] += a[16x16] · b[16x8], bf16 operands, f32 accumulators (the per-warp fragment layouts of
 * the PTX manual: lane = 4·g + t holds rows g and g + 8, columns 2t and 2t + 1). */
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/* Two floats as bf16x2, `lo` in the low half (the lower column of a fragment pair). */
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t *>(&v);
}

/* ---- Key validity: mask and the end of the keys --------------------------------------------- */

/* For a tile of BN keys starting at k0: lane l holds, in byte e of the result, 1 when key
 * k0 + l·(BN/32) + e exists (< nk) and is not masked. */
template <int BN>
__device__ __forceinline__ uint32_t key_word(const uint8_t *mask_row, int k0, int nk, int lane) {
  constexpr int KPL = BN / 32;
  uint32_t word = 0;
#pragma unroll
  for (int e = 0; e < KPL; ++e) {
    const int key = k0 + lane * KPL + e;
    bool ok = key < nk;
    if (mask_row != nullptr) ok = ok && mask_row[key] != 0;
    word |= (uint32_t)ok << (8 * e);
  }
  return word;
}

template <int BN>
__device__ __forceinline__ bool all_keys_valid(uint32_t word) {
  constexpr int KPL = BN / 32;
  constexpr uint32_t all = KPL == 4 ? 0x01010101u : KPL == 2 ? 0x0101u : 0x01u;
  return __all_sync(0xffffffffu, word == all);
}

/* Scores of invalid keys ← fill (−inf: no weight in a softmax; 0 for weights already made).
 * Thread (g, t) holds columns 8·nt + 2t + {0, 1}; the lane that loaded key c is c / KPL. */
template <int MT, int NT, int BN>
__device__ __forceinline__ void mask_scores(float (&s)[MT][NT][4], uint32_t word, int t,
                                            float fill = -INFINITY) {
  constexpr int KPL = BN / 32;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int c0 = nt * 8 + 2 * t;
    const uint32_t w0 = __shfl_sync(0xffffffffu, word, c0 / KPL);
    const uint32_t w1 = KPL >= 2 ? w0 : __shfl_sync(0xffffffffu, word, c0 + 1);
    const bool ok0 = (w0 >> (8 * (c0 % KPL))) & 1u;
    const bool ok1 = (w1 >> (8 * ((c0 + 1) % KPL))) & 1u;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      if (!ok0) s[mt][nt][0] = s[mt][nt][2] = fill;
      if (!ok1) s[mt][nt][1] = s[mt][nt][3] = fill;
    }
  }
}

/* ---- Tiles in shared memory ---------------------------------------------------------------- */

/* Byte offset of 16-byte chunk `chunk` of row `row` in a tile of rows of D bf16: chunks are
 * XOR-swizzled so that the 8 rows an ldmatrix reads at one logical chunk hit 8 different bank
 * groups. */
template <int D>
__device__ __forceinline__ uint32_t tile_off(int row, int chunk) {
  if constexpr (D >= 64)
    return (uint32_t)(row * (D * 2) + ((chunk ^ (row & 7)) << 4));
  else
    return (uint32_t)(row * (D * 2) + ((chunk ^ ((row >> 1) & 3)) << 4));
}

/* Rows [row0, row0 + ROWS) of a [N, heads, D] slice (row stride rs elements) into a tile; rows at
 * or past n are zero-filled. */
template <int D, int ROWS, int THREADS>
__device__ __forceinline__ void load_rows(uint32_t tile, const bf16 *base, int64_t rs, int row0, int n,
                                          int tid) {
  constexpr int CH = D / 8;
#pragma unroll
  for (int i = tid; i < ROWS * CH; i += THREADS) {
    const int r = i / CH, c = i % CH;
    const int row = row0 + r;
    const bool ok = row < n;
    cp_async16(tile + tile_off<D>(r, c), base + (ok ? (int64_t)row * rs : 0) + c * 8, ok ? 16 : 0);
  }
}

/* ---- Block products on tiles -------------------------------------------------------------- */

/* A lane's ldmatrix byte offsets into tiles of rows of D bf16 (tile_off's swizzle), for the first
 * four 16-column k-steps (a later step kk adds 128 bytes per four steps: the swizzle touches only
 * the low three chunk bits). Lane L reads a row whose row % 8 = L % 8 at logical chunk 2·kk + bit,
 * so its swizzled chunk is ((2·(kk % 4)) ^ y) + 8·(kk / 4) with y = bit ^ sw(L % 8).
 *   a:  A fragments of rows [row0, row0 + 16) (row0 a multiple of 8: the warp's own rows);
 *   b:  B fragments of two 8-row n-tiles of 16 consecutive rows (S = X·Yᵀ reads Y's rows);
 *   bt: B fragments read transposed, 16 rows along k and two 8-column n-tiles (C += P·Z). */
template <int D>
struct FragOffsets {
  static constexpr int CV = D / 16 < 4 ? D / 16 : 4;
  uint32_t a[CV], b[CV], bt[CV];
  __device__ __forceinline__ FragOffsets(int lane, int row0) {
    constexpr int RB = D * 2;
    const int sw = D >= 64 ? (lane & 7) : ((lane >> 1) & 3);
#pragma unroll
    for (int c = 0; c < CV; ++c) {
      a[c] = (uint32_t)((row0 + (lane & 15)) * RB + (((2 * c) ^ ((lane >> 4) ^ sw)) << 4));
      b[c] = (uint32_t)((((lane >> 4) << 3) + (lane & 7)) * RB + (((2 * c) ^ (((lane >> 3) & 1) ^ sw)) << 4));
      bt[c] = (uint32_t)(((((lane >> 3) & 1) << 3) + (lane & 7)) * RB + (((2 * c) ^ ((lane >> 4) ^ sw)) << 4));
    }
  }
};

/* c[mt][n], c[mt][n + 1] += a[mt] · the two 8-column n-tiles of B fragments b holds (as an
 * ldmatrix_x4 loads them), for every m-tile mt. */
template <int MT, int N>
__device__ __forceinline__ void mma_ntile_pair(float (&c)[MT][N][4], const uint32_t (&a)[MT][4],
                                               const uint32_t (&b)[4], int n) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    mma_bf16(c[mt][n], a[mt], b[0], b[1]);
    mma_bf16(c[mt][n + 1], a[mt], b[2], b[3]);
  }
}

/* s = X·Yᵀ over the D columns: X's A fragments from x_frag(mt, kk, a) (m-tile mt, k-step kk),
 * Y the NT·8 rows of tile y. */
template <int D, int MT, int NT, class XFrag>
__device__ __forceinline__ void product_xyt_with(float (&s)[MT][NT][4], XFrag x_frag, uint32_t y,
                                                 const FragOffsets<D> &f) {
  constexpr int RB = D * 2;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) x_frag(mt, kk, a[mt]);
#pragma unroll
    for (int nb = 0; nb < NT / 2; ++nb) {
      uint32_t yb[4];
      ldmatrix_x4(yb, y + f.b[kk & 3] + nb * 16 * RB + (kk >> 2) * 128);
      mma_ntile_pair<MT, NT>(s, a, yb, 2 * nb);
    }
  }
}

/* The A fragment of m-tile mt, k-step kk of the warp's rows of tile x. */
template <int D>
__device__ __forceinline__ void load_a_frag(uint32_t (&a)[4], uint32_t x, const FragOffsets<D> &f, int mt,
                                            int kk) {
  ldmatrix_x4(a, x + f.a[kk & 3] + mt * 16 * (D * 2) + (kk >> 2) * 128);
}

/* s = X·Yᵀ with X the warp's MT·16 rows of tile x (m-tile mt 16 rows further). */
template <int D, int MT, int NT>
__device__ __forceinline__ void product_xyt(float (&s)[MT][NT][4], uint32_t x, uint32_t y,
                                            const FragOffsets<D> &f) {
  product_xyt_with<D, MT, NT>(
      s, [&](int mt, int kk, uint32_t(&a)[4]) { load_a_frag<D>(a, x, f, mt, kk); }, y, f);
}

/* c += P·Z: P the warp's MT·16 × KS·16 block held as score accumulators (rounded to bf16 here, in
 * the A-fragment layout they already have), Z the KS·16 rows of tile z read transposed. */
template <int D, int MT, int KS>
__device__ __forceinline__ void product_pz(float (&c)[MT][D / 8][4], const float (&p)[MT][2 * KS][4],
                                           uint32_t z, const FragOffsets<D> &f) {
  constexpr int RB = D * 2;
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      a[mt][0] = pack_bf16(p[mt][2 * kk][0], p[mt][2 * kk][1]);
      a[mt][1] = pack_bf16(p[mt][2 * kk][2], p[mt][2 * kk][3]);
      a[mt][2] = pack_bf16(p[mt][2 * kk + 1][0], p[mt][2 * kk + 1][1]);
      a[mt][3] = pack_bf16(p[mt][2 * kk + 1][2], p[mt][2 * kk + 1][3]);
    }
#pragma unroll
    for (int db = 0; db < D / 16; ++db) {
      uint32_t zb[4];
      ldmatrix_x4_trans(zb, z + f.bt[db & 3] + kk * 16 * RB + (db >> 2) * 128);
      mma_ntile_pair<MT, D / 8>(c, a, zb, 2 * db);
    }
  }
}

/* ---- Host side ---------------------------------------------------------------------------- */

/* The shape checks every attention entry point makes (fn names it in the messages): a head_dim
 * the kernels cover (32, 64, 128; the forward also 384, the one head of the Wan-VAE's middle
 * attention), Bk dividing B, sizes within the grid and 32-bit row indices. *empty is set where
 * there is nothing to compute (no queries, heads or batch rows). */
static inline osp_status flash_check_shape(const char *fn, const osp_cuda_attention_shape &shape,
                                           bool forward, bool *empty) {
  const int64_t D = shape.head_dim;
  if (D != 32 && D != 64 && D != 128 && !(forward && D == 384))
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: head_dim %lld is not supported (supported: 32, 64, 128%s)", fn,
                    (long long)D, forward ? ", 384" : "");
  *empty = shape.batch <= 0 || shape.queries <= 0 || shape.heads <= 0;
  if (*empty) return OSP_OK;
  if (shape.kv_batch <= 0 || shape.batch % shape.kv_batch != 0 || shape.keys < 0)
    return osp_fail(OSP_ERR_SHAPE, "%s: kv_batch %lld does not divide batch %lld", fn,
                    (long long)shape.kv_batch, (long long)shape.batch);
  if (shape.batch > 65535 || shape.heads > 65535 || shape.queries > INT32_MAX - 256 ||
      shape.keys > INT32_MAX - 256)
    return osp_fail(OSP_ERR_UNSUPPORTED,
                    "%s: batch %lld, heads %lld, queries %lld, keys %lld exceed the kernel's grid or "
                    "index range",
                    fn, (long long)shape.batch, (long long)shape.heads, (long long)shape.queries,
                    (long long)shape.keys);
  return OSP_OK;
}

}  // namespace flash

#endif
