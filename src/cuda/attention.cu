/* FlashAttention of our own (osp_cuda_attention): non-causal multi-head attention on bf16
 * q, k, v, out in [B, N, heads, D] rows, an online softmax in f32 and f32 accumulation, so the
 * Nq × Nk score matrix never exists.
 *
 * Two kernels, one contract:
 *
 * - fa3_kernel (Hopper, sm_90a; head_dim 128, scale ≥ 0; the production path): the
 *   FlashAttention-3 structure. Three warpgroups: one producer thread issues TMA (bulk tensor)
 *   copies of Q and of K, V tiles (128 keys, two stages each, 128-byte swizzle) that complete on
 *   mbarriers; two consumer warpgroups own 64 query rows each and run wgmma: S = Q·Kᵀ with both
 *   operands in shared memory, O += P·V with P from registers. Within a warpgroup the softmax of
 *   tile j overlaps the tensor cores (issue S_j, issue P_{j−1}·V_{j−1}, wait S_j, softmax, wait
 *   PV); the two warpgroups take turns issuing ("ping-pong", named barriers), so one's softmax runs
 *   under the other's products. setmaxnreg moves registers from the producer to the consumers. The
 *   grid is persistent (one block per multiprocessor walking 128-query tiles): the next tile's Q
 *   loads while the current one's last product and output finish, which is what short key runs
 *   (cross-attention, Nk = 512) need. Output goes through shared memory as 16-byte row stores.
 *
 * - fa2_kernel<D, WARPS, MT, BN, BIAS> (any CUDA GPU of sm_80 or later; head_dim 32, 64, 128,
 *   and 384 for the Wan-VAE's middle attention; the fallback and the path for D ≠ 128, negative
 *   scales and a bias): the FlashAttention-2 structure. A
 *   block owns BM = WARPS·16·MT query rows of one (batch, head) and walks the keys in tiles of BN;
 *   each warp owns 16·MT query rows, so its softmax statistics live in its own registers. K and V
 *   tiles are double-buffered in shared memory through cp.async (tile j+1 lands while tile j is
 *   used); the products are mma.sync m16n8k16 (bf16 in, f32 accumulate) fed by ldmatrix from an
 *   XOR-swizzled layout (no bank conflicts); P goes from the score accumulators straight into A
 *   fragments (bf16) for P·V. Its building blocks live in flash.cuh, shared with the backward.
 *
 * Both fold the scale into log2(e) and use ex2.approx: p = 2^(s·scale·log2e − m). A masked or
 * missing key (past Nk) scores −inf; a query whose keys are all masked keeps m = −inf and l = 0 and
 * is written as 0. A negative scale runs on fa2_kernel with q's sign flipped in shared memory (the
 * bf16 negation is exact); scale 0 becomes a tiny positive scale (every weight 1 to f32 rounding).
 * Where the caller asks for lse (training: osp_attention_forward_lse), both store each query's
 * (m + log2 l)·ln 2 beside its output row (−inf where l = 0): one predicated store per row, no
 * change to the loop (measured: 197.8 ms with lse against 201.8 without, at N = 75,600, 40 heads;
 * both within run-to-run noise). The backward (attention_backward.cu) recomputes P from it.
 *
 * Why our own and not cuDNN: cuDNN 9's fused SDPA, driven through its backend graph API, was
 * measured against this kernel in one `osp bench` run on an H100 80GB HBM3 (40 heads × 128,
 * 720P shapes): full self-attention N=75,600 203.8 ms (574 TFLOP/s) against 194.3 ms (602);
 * Skiparse B=4, N=20,160 with a key mask 78.4 ms (cuDNN takes the mask as an additive bias,
 * 424 TFLOP/s) against 53.7 ms (620); cross-attention Nk=512 1.38 ms against 1.61 ms. This kernel
 * wins where the time is, so cuDNN left the tree (and the build's dependencies); the cuDNN code
 * is in the history of issue 6 should a later cuDNN turn the table. fa2_kernel alone runs
 * ~327 TFLOP/s on the full shape.
 *
 * osp_cuda_flash_attention_biased (umT5's relative position bias) runs on fa2_kernel with an f32 bias
 * [heads, Nq, Nk] added to each tile's scores before the mask: a separate instantiation (BIAS), so
 * the plain kernels are the code they were.
 *
 * OSP_FLASH_PATH=fa2 in the environment forces fa2_kernel (for tests of both paths). Built with
 * OSP_FLASH_DEBUG_WAIT defined (test harnesses), an mbarrier wait that never ends traps with a
 * message instead of hanging. */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/flash.cuh"
#include "cuda/kernels.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define OSP_FLASH_WGMMA 1
#else
#define OSP_FLASH_WGMMA 0
#endif

namespace {

using namespace flash;

struct FlashParams {
  const bf16 *q, *k, *v;
  const uint8_t *mask; /* [B, Nk] or NULL */
  bf16 *out;
  float *lse; /* [B, heads, Nq] or NULL: the log-sum-exp of each query's scaled scores */
  const float *bias; /* [heads, Nq, Nk] added to the scaled scores, or NULL (fa2_kernel only) */
  int nq, nk, heads, kv_batch;
  float sl2;  /* |scale| · log2(e), > 0 */
  int negate; /* scale < 0: q enters negated */
};

/* Folds a tile of raw scores into the running softmax of each of the thread's rows (g and g + 8
 * of every m-tile) and turns the scores into P = 2^(s·sl2 − m) in place. m is kept in log2 units
 * (max of s·sl2); l is this thread's share of the row sum (its 4-lane quad holds the rest).
 * corr = 2^(m_old − m_new) rescales what was accumulated before. */
template <int MT, int NT>
__device__ __forceinline__ void online_softmax(float (&s)[MT][NT][4], float (&m)[MT][2], float (&l)[MT][2],
                                               float (&corr)[MT][2], float sl2) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      mx[0] = fmaxf(mx[0], fmaxf(s[mt][nt][0], s[mt][nt][1]));
      mx[1] = fmaxf(mx[1], fmaxf(s[mt][nt][2], s[mt][nt][3]));
    }
    float base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mnew = mx[r] == -INFINITY ? m[mt][r] : fmaxf(m[mt][r], mx[r] * sl2);
      base[r] = mnew == -INFINITY ? 0.0f : mnew;
      corr[mt][r] = ex2(m[mt][r] - base[r]);
      m[mt][r] = mnew;
    }
    float sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        s[mt][nt][e] = ex2(fmaf(s[mt][nt][e], sl2, -base[r]));
        sum[r] += s[mt][nt][e];
      }
    }
    l[mt][0] = l[mt][0] * corr[mt][0] + sum[0];
    l[mt][1] = l[mt][1] * corr[mt][1] + sum[1];
  }
}

/* A query's log-sum-exp in natural units from its softmax state: m the largest s·sl2 (log2 units),
 * sum = Σ 2^(s·sl2 − m) over its keys; −inf where every key is masked (sum = 0). */
__device__ __forceinline__ float log_sum_exp(float m, float sum) {
  constexpr float kLn2 = 0.6931471805599453f;
  return sum > 0.0f ? (m + log2f(sum)) * kLn2 : -INFINITY;
}

/* ---- fa2_kernel: mma.sync, cp.async, any sm_80+ -------------------------------------------- */

/* With a bias the scores enter the softmax in log2 units already: s ← s·sl2 + bias·log2(e), for
 * the thread's rows row0 + 16·mt + g (+ 8) and keys k0 + 8·nt + 2t (+ 1) of head h (the m16n8
 * accumulator layout: element 2r + c is row g + 8r, key 2t + c); online_softmax then runs with
 * sl2 = 1. Rows past Nq and keys past Nk read no bias: those keys are masked next, those rows are
 * never stored. */
template <int MT, int NT>
__device__ __forceinline__ void add_bias(float (&s)[MT][NT][4], const FlashParams &p, int h, int row0, int k0,
                                         int g, int t) {
  const float *head = p.bias + (int64_t)h * p.nq * p.nk;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = row0 + mt * 16 + g + 8 * r;
      const float *bias_row = head + (int64_t)(row < p.nq ? row : 0) * p.nk;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int key = k0 + nt * 8 + 2 * t + c;
          const float bias = row < p.nq && key < p.nk ? __ldg(bias_row + key) : 0.0f;
          s[mt][nt][2 * r + c] = fmaf(s[mt][nt][2 * r + c], p.sl2, bias * kLog2e);
        }
    }
}

template <int D, int WARPS, int MT, int BN>
struct Fa2Config {
  static constexpr int BM = WARPS * 16 * MT;
  static constexpr int THREADS = WARPS * 32;
  static constexpr int SMEM = (BM + 4 * BN) * D * 2; /* Q, then two stages of K and V */
};

template <int D, int WARPS, int MT, int BN, bool BIAS>
__global__ void __launch_bounds__(WARPS * 32) fa2_kernel(const FlashParams p) {
  static_assert(D % 32 == 0 && BN % 32 == 0 && BN <= 128, "tile shape");
  constexpr int BM = WARPS * 16 * MT, THREADS = WARPS * 32, CH = D / 8, NT = BN / 8, KT = D / 16;
  constexpr bool Q_IN_REGS = MT * D <= 128;
  constexpr uint32_t TILE_Q = BM * D * 2, TILE_KV = BN * D * 2;

  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sQ = smem_u32(smem), sKV = sQ + TILE_Q;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int q0 = blockIdx.x * BM, h = blockIdx.y, b = blockIdx.z, bk = b % p.kv_batch;
  const int64_t rs = (int64_t)p.heads * D;
  const bf16 *qg = p.q + ((int64_t)b * p.nq * p.heads + h) * D;
  const bf16 *kg = p.k + ((int64_t)bk * p.nk * p.heads + h) * D;
  const bf16 *vg = p.v + ((int64_t)bk * p.nk * p.heads + h) * D;
  const uint8_t *mask_row = p.mask ? p.mask + (int64_t)b * p.nk : nullptr;
  const int tiles = (p.nk + BN - 1) / BN;
  const int wrow = warp * 16 * MT; /* this warp's first row in the tile */

  load_rows<D, BM, THREADS>(sQ, qg, rs, q0, p.nq, tid);
  load_rows<D, BN, THREADS>(sKV, kg, rs, 0, p.nk, tid);
  load_rows<D, BN, THREADS>(sKV + TILE_KV, vg, rs, 0, p.nk, tid);
  cp_async_commit();

  float o[MT][D / 8][4];
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.0f;
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
  }
  uint32_t qf[Q_IN_REGS ? MT : 1][Q_IN_REGS ? KT : 1][4];

  const FragOffsets<D> f(lane, wrow); /* ldmatrix addresses: the rest is an immediate */

  for (int j = 0; j < tiles; ++j) {
    const uint32_t sK = sKV + (uint32_t)(j & 1) * 2 * TILE_KV, sV = sK + TILE_KV;
    cp_async_wait<0>();
    __syncthreads(); /* tile j is in; every warp is done with tile j − 1's stage */
    if (j == 0) {
      if (p.negate) {
        uint4 *q4 = reinterpret_cast<uint4 *>(smem);
        for (int i = tid; i < BM * CH; i += THREADS) {
          uint4 x = q4[i];
          x.x ^= 0x80008000u, x.y ^= 0x80008000u, x.z ^= 0x80008000u, x.w ^= 0x80008000u;
          q4[i] = x;
        }
        __syncthreads();
      }
      if constexpr (Q_IN_REGS) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int kk = 0; kk < KT; ++kk)
            load_a_frag<D>(qf[mt][kk], sQ, f, mt, kk);
      }
    }
    if (j + 1 < tiles) {
      const uint32_t nK = sKV + (uint32_t)((j + 1) & 1) * 2 * TILE_KV;
      load_rows<D, BN, THREADS>(nK, kg, rs, (j + 1) * BN, p.nk, tid);
      load_rows<D, BN, THREADS>(nK + TILE_KV, vg, rs, (j + 1) * BN, p.nk, tid);
    }
    cp_async_commit();
    const uint32_t word = key_word<BN>(mask_row, j * BN, p.nk, lane);

    /* S = Q · Kᵀ */
    float s[MT][NT][4];
    product_xyt_with<D, MT, NT>(
        s,
        [&](int mt, int kk, uint32_t(&a)[4]) {
          if constexpr (Q_IN_REGS)
            a[0] = qf[mt][kk][0], a[1] = qf[mt][kk][1], a[2] = qf[mt][kk][2], a[3] = qf[mt][kk][3];
          else
            load_a_frag<D>(a, sQ, f, mt, kk);
        },
        sK, f);

    if constexpr (BIAS) add_bias<MT, NT>(s, p, h, q0 + wrow, j * BN, g, t);
    if (!all_keys_valid<BN>(word)) mask_scores<MT, NT, BN>(s, word, t);
    float corr[MT][2];
    online_softmax<MT, NT>(s, m, l, corr, BIAS ? 1.0f : p.sl2);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        o[mt][dt][0] *= corr[mt][0], o[mt][dt][1] *= corr[mt][0];
        o[mt][dt][2] *= corr[mt][1], o[mt][dt][3] *= corr[mt][1];
      }

    /* O += P · V, P (bf16) straight from the score accumulators */
    product_pz<D, MT, BN / 16>(o, s, sV, f);
  }

  /* O / l through this warp's own Q rows of shared memory (no other warp reads them), then 16-byte
   * coalesced stores. */
  float inv[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float sum = l[mt][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      inv[mt][r] = sum > 0.0f ? 1.0f / sum : 0.0f;
      const int row = q0 + wrow + mt * 16 + g + 8 * r;
      if (p.lse != nullptr && t == 0 && row < p.nq)
        p.lse[((int64_t)b * p.heads + h) * p.nq + row] = log_sum_exp(m[mt][r], sum);
    }
  __syncwarp();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int r0 = wrow + mt * 16 + g;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      *reinterpret_cast<uint32_t *>(smem + tile_off<D>(r0, dt) + 4 * t) =
          pack_bf16(o[mt][dt][0] * inv[mt][0], o[mt][dt][1] * inv[mt][0]);
      *reinterpret_cast<uint32_t *>(smem + tile_off<D>(r0 + 8, dt) + 4 * t) =
          pack_bf16(o[mt][dt][2] * inv[mt][1], o[mt][dt][3] * inv[mt][1]);
    }
  }
  __syncwarp();
#pragma unroll
  for (int i = lane; i < 16 * MT * CH; i += 32) {
    const int r = i / CH, c = i % CH;
    const int row = q0 + wrow + r;
    if (row < p.nq) {
      const uint4 x = *reinterpret_cast<const uint4 *>(smem + tile_off<D>(wrow + r, c));
      *reinterpret_cast<uint4 *>(p.out + (((int64_t)b * p.nq + row) * p.heads + h) * D + c * 8) = x;
    }
  }
}

/* ---- fa3_kernel: wgmma, TMA, mbarriers, warp specialisation (sm_90a, D = 128) ----------------- */

namespace fa3 {
constexpr int D = 128, BM = 128, BN = 128, THREADS = 384;
constexpr uint32_t TILE_BYTES = 128 * 128 * 2; /* a Q, K, V or output tile: two 64-column halves */
constexpr uint32_t HALF_BYTES = TILE_BYTES / 2;
constexpr uint32_t OFF_K = TILE_BYTES, OFF_V = OFF_K + 2 * TILE_BYTES, OFF_OUT = OFF_V + 2 * TILE_BYTES;
constexpr uint32_t OFF_BAR = OFF_OUT + TILE_BYTES;
constexpr uint32_t SMEM = OFF_BAR + 128 + 1024; /* barriers, and room to align the base to 1 KiB */
/* Barriers (8 bytes each) at OFF_BAR: Q full; K full ×2; K empty ×2; V full ×2; V empty ×2;
 * Q empty. */
constexpr uint32_t BAR_Q = 0, BAR_KFULL = 8, BAR_KEMPTY = 24, BAR_VFULL = 40, BAR_VEMPTY = 56, BAR_QEMPTY = 72;
constexpr uint32_t CONSUMER_WARPS = 8;
}  // namespace fa3

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
#ifdef OSP_FLASH_DEBUG_WAIT /* test harnesses: a wait that never ends traps instead of hanging */
  uint32_t spins = 0;
#endif
  do {
#ifdef OSP_FLASH_DEBUG_WAIT
    if (++spins == (1u << 22)) {
      printf("attention_flash: stuck on mbarrier %u parity %u (block %d %d %d, thread %d)\n", bar & 0xFFFFu, parity,
             blockIdx.x, blockIdx.y, blockIdx.z, threadIdx.x);
      __trap();
    }
#endif
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const CUtensorMap *map, uint32_t bar, int c0, int c1,
                                            int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}
__device__ __forceinline__ void named_bar_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Keeps the compiler from moving accesses of registers that an in-flight wgmma owns across the
 * fence/commit/wait statements. */
template <int R, int C>
__device__ __forceinline__ void reg_fence(float (&x)[R][C]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < C; ++j) asm volatile("" : "+f"(x[i][j])::"memory");
}
template <int R, int C>
__device__ __forceinline__ void reg_fence(uint32_t (&x)[R][C]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int j = 0; j < C; ++j) asm volatile("" : "+r"(x[i][j])::"memory");
}

/* A shared-memory matrix descriptor for the 128-byte swizzle (layout type 1): start address,
 * leading and stride byte offsets, each in 16-byte units. */
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return (uint64_t)((addr & 0x3FFFFu) >> 4) | ((uint64_t)((lbo >> 4) & 0x3FFFu) << 16) |
         ((uint64_t)((sbo >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

/* The 64 f32 accumulators of a wgmma m64n128 tile as read-write asm operands %0..%63. */
#define WGMMA_ACCUMULATORS(d) \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), \
  "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), \
  "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
  "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), \
  "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), \
  "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
  "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), \
  "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), \
  "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]), \
  "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), \
  "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]), \
  "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), \
  "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), \
  "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]), \
  "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), \
  "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])

/* d[64x128] (+)= A[64x16] · B[16x128] over one warpgroup: A and B in shared memory, both K-major
 * with the 128-byte swizzle; accumulate = 0 overwrites d. */
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[16][4], uint64_t desc_a, uint64_t desc_b,
                                                    int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : WGMMA_ACCUMULATORS(d)
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}

/* d[64x128] += A[64x16] · B[16x128] over one warpgroup: A from registers (each warp's 16 rows in
 * the mma.sync A-fragment layout), B in shared memory MN-major (transposed), 128-byte swizzle. */
__device__ __forceinline__ void wgmma_m64n128k16_rs(float (&d)[16][4], const uint32_t (&a)[4],
                                                    uint64_t desc_b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"
      "}\n"
      : WGMMA_ACCUMULATORS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
}

/* S = Q · Kᵀ for one warpgroup's 64 rows: q and k are the tile bases ([2 halves][rows][64]
 * swizzled); a k-step of 16 columns moves 32 bytes inside a half. */
__device__ __forceinline__ void issue_qk(float (&s)[16][4], uint32_t q, uint32_t k) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    const uint32_t off = (uint32_t)(kk >> 2) * fa3::HALF_BYTES + (uint32_t)(kk & 3) * 32;
    wgmma_m64n128k16_ss(s, sw128_desc(q + off, 16, 1024), sw128_desc(k + off, 16, 1024), kk > 0);
  }
}

/* O += P · V: V's tile is [2 halves of 64 columns][128 keys][64]; a k-step of 16 keys moves 2 KiB;
 * the two halves of the N = 128 columns lie HALF_BYTES apart (the leading byte offset). */
__device__ __forceinline__ void issue_pv(float (&o)[16][4], const uint32_t (&pf)[8][4], uint32_t v) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) wgmma_m64n128k16_rs(o, pf[kk], sw128_desc(v + kk * 2048, fa3::HALF_BYTES, 1024));
}

__device__ __forceinline__ void scores_to_p(const float (&s)[1][16][4], uint32_t (&pf)[8][4]) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    pf[kk][0] = pack_bf16(s[0][2 * kk][0], s[0][2 * kk][1]);
    pf[kk][1] = pack_bf16(s[0][2 * kk][2], s[0][2 * kk][3]);
    pf[kk][2] = pack_bf16(s[0][2 * kk + 1][0], s[0][2 * kk + 1][1]);
    pf[kk][3] = pack_bf16(s[0][2 * kk + 1][2], s[0][2 * kk + 1][3]);
  }
}

/* 1 where this translation unit's device code was compiled for sm_90a (wgmma), read by the host. */
__device__ int flash_wgmma_built = OSP_FLASH_WGMMA;

/* One work item is a tile of 128 queries of one (batch, head); item i is query tile i mod qtiles of
 * head (i / qtiles) mod heads of batch i / (qtiles·heads). A block takes items blockIdx.x,
 * blockIdx.x + gridDim.x, ... (a grid of one block per item, or a persistent grid of one block
 * per multiprocessor): the K/V stages and their barrier phases run on across items, and the next
 * item's Q is loaded while the last products and the output of the current one finish. */
template <bool PINGPONG, bool LSE>
__global__ void __launch_bounds__(fa3::THREADS, 1)
    fa3_kernel(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
               const __grid_constant__ CUtensorMap tv, const FlashParams p, const int batch) {
#if OSP_FLASH_WGMMA
  using namespace fa3;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  uint8_t *const smem = smem_raw + (base - raw);
  const uint32_t sQ = base, sK = base + OFF_K, sV = base + OFF_V, bar = base + OFF_BAR;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
  const int qtiles = (p.nq + BM - 1) / BM;
  const int items = qtiles * p.heads * batch;
  const int tiles = (p.nk + BN - 1) / BN;

  if (tid == 0) {
    mbar_init(bar + BAR_Q, 1);
    mbar_init(bar + BAR_QEMPTY, CONSUMER_WARPS);
    for (int s = 0; s < 2; ++s) {
      mbar_init(bar + BAR_KFULL + 8 * s, 1);
      mbar_init(bar + BAR_KEMPTY + 8 * s, CONSUMER_WARPS);
      mbar_init(bar + BAR_VFULL + 8 * s, 1);
      mbar_init(bar + BAR_VEMPTY + 8 * s, CONSUMER_WARPS);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    /* Producer: one thread issues every copy. kv counts K/V tiles over all of the block's items:
     * tile kv uses stage kv % 2 for the (kv / 2)-th time. */
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (warp == 0 && lane == 0) {
      uint32_t kv = 0, local = 0;
      for (int item = blockIdx.x; item < items; item += gridDim.x, ++local) {
        const int qtile = item % qtiles, rest = item / qtiles, h = rest % p.heads, b = rest / p.heads;
        const int bk = b % p.kv_batch;
        mbar_wait(bar + BAR_QEMPTY, (local & 1) ^ 1);
        mbar_expect_tx(bar + BAR_Q, TILE_BYTES);
        tma_load_4d(sQ, &tq, bar + BAR_Q, 0, h, qtile * BM, b);
        tma_load_4d(sQ + HALF_BYTES, &tq, bar + BAR_Q, 64, h, qtile * BM, b);
        for (int j = 0; j < tiles; ++j, ++kv) {
          const uint32_t s = kv & 1, phase = ((kv >> 1) & 1) ^ 1;
          mbar_wait(bar + BAR_KEMPTY + 8 * s, phase);
          mbar_expect_tx(bar + BAR_KFULL + 8 * s, TILE_BYTES);
          tma_load_4d(sK + s * TILE_BYTES, &tk, bar + BAR_KFULL + 8 * s, 0, h, j * BN, bk);
          tma_load_4d(sK + s * TILE_BYTES + HALF_BYTES, &tk, bar + BAR_KFULL + 8 * s, 64, h, j * BN, bk);
          mbar_wait(bar + BAR_VEMPTY + 8 * s, phase);
          mbar_expect_tx(bar + BAR_VFULL + 8 * s, TILE_BYTES);
          tma_load_4d(sV + s * TILE_BYTES, &tv, bar + BAR_VFULL + 8 * s, 0, h, j * BN, bk);
          tma_load_4d(sV + s * TILE_BYTES + HALF_BYTES, &tv, bar + BAR_VFULL + 8 * s, 64, h, j * BN, bk);
        }
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int cw = wg - 1; /* consumer warpgroup: query rows 64·cw .. 64·cw + 63 of the tile */
    const int wl = warp & 3, g = lane >> 2, t = lane & 3;
    const uint32_t q = sQ + (uint32_t)cw * 64 * 128;
    uint8_t *const stage = smem + OFF_OUT + (uint32_t)cw * 64 * 128; /* this warpgroup's output rows */
    /* Ping-pong: named barrier 3 + w is warpgroup w's turn to issue products; 1 + w is its own. */
    const int my_turn = 3 + cw, other_turn = 3 + (cw ^ 1);
    if (PINGPONG && cw == 1) named_bar_arrive(3, 256); /* warpgroup 0 issues first */

    uint32_t kv = 0, local = 0;
    for (int item = blockIdx.x; item < items; item += gridDim.x, ++local) {
      const bool last_item = item + (int)gridDim.x >= items;
      const int qtile = item % qtiles, rest = item / qtiles, h = rest % p.heads, b = rest / p.heads;
      const uint8_t *mask_row = p.mask ? p.mask + (int64_t)b * p.nk : nullptr;

      float o[1][16][4], s[1][16][4];
      uint32_t pf[8][4];
#pragma unroll
      for (int i = 0; i < 16; ++i) o[0][i][0] = o[0][i][1] = o[0][i][2] = o[0][i][3] = 0.0f;
      float m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}}, corr[1][2];

      mbar_wait(bar + BAR_Q, local & 1);

      /* Tile 0: S_0 alone. */
      {
        const uint32_t s0 = kv & 1;
        const uint32_t word = key_word<BN>(mask_row, 0, p.nk, lane);
        if (PINGPONG) named_bar_sync(my_turn, 256);
        mbar_wait(bar + BAR_KFULL + 8 * s0, (kv >> 1) & 1);
        reg_fence(s[0]);
        wgmma_fence();
        issue_qk(s[0], q, sK + s0 * TILE_BYTES);
        wgmma_commit();
        if (PINGPONG) named_bar_arrive(other_turn, 256);
        wgmma_wait<0>();
        reg_fence(s[0]);
        if (lane == 0) {
          mbar_arrive(bar + BAR_KEMPTY + 8 * s0);
          if (tiles == 1) mbar_arrive(bar + BAR_QEMPTY);
        }
        if (!all_keys_valid<BN>(word)) mask_scores<1, 16, BN>(s, word, t);
        online_softmax<1, 16>(s, m, l, corr, p.sl2);
        scores_to_p(s, pf);
      }

      /* Tile j: issue S_j and P_{j−1}·V_{j−1}; the softmax of S_j runs while the second product
       * does. */
      for (int j = 1; j < tiles; ++j) {
        const uint32_t gj = kv + j, gp = gj - 1, sj = gj & 1, sp = gp & 1;
        const uint32_t word = key_word<BN>(mask_row, j * BN, p.nk, lane);
        if (PINGPONG) named_bar_sync(my_turn, 256);
        mbar_wait(bar + BAR_KFULL + 8 * sj, (gj >> 1) & 1);
        reg_fence(s[0]);
        reg_fence(o[0]);
        reg_fence(pf);
        wgmma_fence();
        issue_qk(s[0], q, sK + sj * TILE_BYTES);
        wgmma_commit();
        mbar_wait(bar + BAR_VFULL + 8 * sp, (gp >> 1) & 1);
        wgmma_fence();
        issue_pv(o[0], pf, sV + sp * TILE_BYTES);
        wgmma_commit();
        if (PINGPONG) named_bar_arrive(other_turn, 256);
        wgmma_wait<1>();
        reg_fence(s[0]);
        if (lane == 0) {
          mbar_arrive(bar + BAR_KEMPTY + 8 * sj);
          if (j == tiles - 1) mbar_arrive(bar + BAR_QEMPTY); /* Q's last reader is done */
        }
        if (!all_keys_valid<BN>(word)) mask_scores<1, 16, BN>(s, word, t);
        online_softmax<1, 16>(s, m, l, corr, p.sl2);
        wgmma_wait<0>();
        reg_fence(o[0]);
        reg_fence(pf);
        if (lane == 0) mbar_arrive(bar + BAR_VEMPTY + 8 * sp);
#pragma unroll
        for (int i = 0; i < 16; ++i) {
          o[0][i][0] *= corr[0][0], o[0][i][1] *= corr[0][0];
          o[0][i][2] *= corr[0][1], o[0][i][3] *= corr[0][1];
        }
        scores_to_p(s, pf);
      }

      /* The last P · V. */
      {
        const uint32_t gl = kv + tiles - 1, sl = gl & 1;
        if (PINGPONG) named_bar_sync(my_turn, 256);
        mbar_wait(bar + BAR_VFULL + 8 * sl, (gl >> 1) & 1);
        reg_fence(o[0]);
        reg_fence(pf);
        wgmma_fence();
        issue_pv(o[0], pf, sV + sl * TILE_BYTES);
        wgmma_commit();
        /* every turn is passed on but warpgroup 1's very last, which nobody waits for */
        if (PINGPONG && (cw == 0 || !last_item)) named_bar_arrive(other_turn, 256);
        wgmma_wait<0>();
        reg_fence(o[0]);
        reg_fence(pf);
        if (lane == 0) mbar_arrive(bar + BAR_VEMPTY + 8 * sl);
      }
      kv += tiles;

      /* O / l, staged through this warpgroup's rows of the output tile (the swizzled layout of the
       * Q tile), then 16-byte coalesced stores of whole rows. */
      float inv[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float sum = l[0][r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        inv[r] = sum > 0.0f ? 1.0f / sum : 0.0f;
        const int row = qtile * BM + cw * 64 + wl * 16 + g + 8 * r;
        if (LSE && t == 0 && row < p.nq)
          p.lse[((int64_t)b * p.heads + h) * p.nq + row] = log_sum_exp(m[0][r], sum);
      }
      named_bar_sync(1 + cw, 128); /* the warpgroup is done reading the previous item's output */
      const int r0 = wl * 16 + g;  /* row within the warpgroup's 64; r0 + 8 is the other */
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const uint32_t half = (uint32_t)(i >> 3) * HALF_BYTES, c = (uint32_t)(i & 7);
        *reinterpret_cast<uint32_t *>(stage + half + r0 * 128 + ((c ^ (r0 & 7)) << 4) + 4 * t) =
            pack_bf16(o[0][i][0] * inv[0], o[0][i][1] * inv[0]);
        *reinterpret_cast<uint32_t *>(stage + half + (r0 + 8) * 128 + ((c ^ (r0 & 7)) << 4) + 4 * t) =
            pack_bf16(o[0][i][2] * inv[1], o[0][i][3] * inv[1]);
      }
      named_bar_sync(1 + cw, 128);
      const int tw = tid - wg * 128;
#pragma unroll
      for (int it = 0; it < 8; ++it) {
        const int idx = it * 128 + tw, r = idx >> 4, c16 = idx & 15;
        const int row = qtile * BM + cw * 64 + r;
        if (row < p.nq) {
          const uint4 x = *reinterpret_cast<const uint4 *>(stage + (uint32_t)(c16 >> 3) * HALF_BYTES + r * 128 +
                                                           (((c16 & 7) ^ (r & 7)) << 4));
          *reinterpret_cast<uint4 *>(p.out + (((int64_t)b * p.nq + row) * p.heads + h) * D + c16 * 8) = x;
        }
      }
    }
  }
#else
  __trap();
#endif
}

/* ---- Host side ---------------------------------------------------------------------------- */

template <int D, int WARPS, int MT, int BN, bool BIAS>
osp_status launch_fa2_kernel(const FlashParams &p, int batch) {
  typedef Fa2Config<D, WARPS, MT, BN> C;
  static bool configured = false;
  if (!configured) {
    OSP_CUDA_TRY("attention_flash: shared memory limit",
                 cudaFuncSetAttribute(fa2_kernel<D, WARPS, MT, BN, BIAS>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, C::SMEM));
    configured = true;
  }
  const dim3 grid((unsigned)((p.nq + C::BM - 1) / C::BM), (unsigned)p.heads, (unsigned)batch);
  fa2_kernel<D, WARPS, MT, BN, BIAS><<<grid, C::THREADS, C::SMEM, osp_cuda_stream()>>>(p);
  return osp_cuda_launched("attention_flash (mma.sync)");
}

/* The biased kernels exist for the text encoder's head sizes, not the VAE's 384. */
template <int D, int WARPS, int MT, int BN>
osp_status launch_fa2(const FlashParams &p, int batch) {
  if constexpr (D != 384)
    if (p.bias) return launch_fa2_kernel<D, WARPS, MT, BN, true>(p, batch);
  return launch_fa2_kernel<D, WARPS, MT, BN, false>(p, batch);
}

/* The tiles each head dim uses on the mma.sync path. For 128, <4, 2, 64> measured fastest on an
 * H100 (327 TFLOP/s at N = 75,600, against 291 for <4, 2, 32> and 224-236 for one m-tile per warp)
 * although ptxas spills 52 bytes of it. For 384 (the VAE's one head) the smallest tiles: 64 query
 * rows and two stages of 32 keys take 144 KiB of shared memory, and each thread's share of the
 * output alone is 192 f32 registers. */
osp_status launch_fa2_for(const FlashParams &p, int batch, int head_dim) {
  switch (head_dim) {
    case 32: return launch_fa2<32, 4, 2, 64>(p, batch);
    case 64: return launch_fa2<64, 4, 2, 32>(p, batch);
    case 384: return launch_fa2<384, 4, 1, 32>(p, batch);
    default: return launch_fa2<128, 4, 2, 64>(p, batch);
  }
}

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder(void) {
  static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
  static bool looked = false;
  if (!looked) {
    looked = true;
    void *fn = nullptr;
    cudaDriverEntryPointQueryResult found;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) ==
            cudaSuccess &&
        found == cudaDriverEntryPointSuccess)
      encode = (PFN_cuTensorMapEncodeTiled_v12000)fn;
    else
      (void)cudaGetLastError();
  }
  return encode;
}

/* Whether fa3_kernel can run: a compute capability 9.0 device, device code built for sm_90a, and
 * the driver's tensor-map encoder. Asked once. */
bool wgmma_available(void) {
  static int available = -1;
  if (available < 0) {
    available = 0;
    int device = 0, major = 0, minor = 0, built = 0;
    if (cudaGetDevice(&device) == cudaSuccess &&
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess && major == 9 &&
        minor == 0 && tensor_map_encoder() != nullptr &&
        cudaMemcpyFromSymbol(&built, flash_wgmma_built, sizeof built) == cudaSuccess && built == 1)
      available = 1;
    (void)cudaGetLastError();
  }
  return available == 1;
}

/* A [batch, n, heads, 128] bf16 tensor as TMA sees it: dims (128, heads, n, batch), innermost
 * first; boxes of 64 columns × 128 rows of one head, 128-byte swizzle, zero fill past the ends. */
bool make_tensor_map(CUtensorMap *map, const void *data, int heads, int n, int batch) {
  const cuuint64_t dims[4] = {128, (cuuint64_t)heads, (cuuint64_t)n, (cuuint64_t)batch};
  const cuuint64_t strides[3] = {128 * 2, (cuuint64_t)heads * 128 * 2, (cuuint64_t)n * heads * 128 * 2};
  const cuuint32_t box[4] = {64, 1, 128, 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  return tensor_map_encoder()(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void *>(data), dims, strides,
                              box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                              CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

int multiprocessors(void) {
  static int count = 0;
  if (count == 0) {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count < 1)
      count = 1;
  }
  return count;
}

/* At most max_blocks blocks walk the items (a persistent grid; 0: one block per item). Returns
 * OSP_ERR_UNSUPPORTED without a message when a tensor map cannot be made or the item count
 * overflows (the caller then takes the mma.sync path). */
/* The kernel with or without the lse output: a separate instantiation, so the inference path
 * compiles to the code it had before lse existed (measured: a run-time test cost it 7%). */
template <bool PINGPONG, bool LSE>
osp_status launch_fa3_kernel(const CUtensorMap &tq, const CUtensorMap &tk, const CUtensorMap &tv,
                             const FlashParams &p, int batch, int64_t blocks) {
  static bool configured = false;
  if (!configured) {
    OSP_CUDA_TRY("attention_flash: shared memory limit",
                 cudaFuncSetAttribute(fa3_kernel<PINGPONG, LSE>, cudaFuncAttributeMaxDynamicSharedMemorySize, fa3::SMEM));
    configured = true;
  }
  fa3_kernel<PINGPONG, LSE><<<(unsigned)blocks, fa3::THREADS, fa3::SMEM, osp_cuda_stream()>>>(tq, tk, tv, p, batch);
  return osp_cuda_launched("attention_flash (wgmma)");
}

template <bool PINGPONG>
osp_status launch_fa3(const FlashParams &p, int batch, int64_t max_blocks) {
  const int64_t items = (int64_t)((p.nq + fa3::BM - 1) / fa3::BM) * p.heads * batch;
  if (items > INT32_MAX) return OSP_ERR_UNSUPPORTED;
  CUtensorMap tq, tk, tv;
  if (!make_tensor_map(&tq, p.q, p.heads, p.nq, batch) || !make_tensor_map(&tk, p.k, p.heads, p.nk, p.kv_batch) ||
      !make_tensor_map(&tv, p.v, p.heads, p.nk, p.kv_batch))
    return OSP_ERR_UNSUPPORTED;
  const int64_t blocks = max_blocks > 0 && items > max_blocks ? max_blocks : items;
  return p.lse ? launch_fa3_kernel<PINGPONG, true>(tq, tk, tv, p, batch, blocks)
               : launch_fa3_kernel<PINGPONG, false>(tq, tk, tv, p, batch, blocks);
}

}  // namespace

/* lse of a query with no keys at all. */
struct no_keys_op {
  __device__ float operator()(float) const { return -INFINITY; }
};

/* osp_cuda_attention and osp_cuda_flash_attention_biased (fn names the entry point in messages): bias NULL
 * or [heads, Nq, Nk]; the wgmma kernel where it applies (head_dim 128, scale ≥ 0, no bias). */
static osp_status attend(const char *fn, const void *q, const void *k, const void *v,
                         const uint8_t *key_mask, const float *bias, float scale, void *out,
                         float *lse, const osp_cuda_attention_shape &shape) {
  bool empty = false;
  OSP_TRY(flash_check_shape(fn, shape, true, &empty));
  if (empty) return OSP_OK;
  if (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)out) % 16 != 0)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: q, k, v and out must be 16-byte aligned", fn);
  const int64_t D = shape.head_dim;
  if (shape.keys == 0) { /* no keys: every query attends to nothing and gets 0 */
    OSP_CUDA_TRY("attention_flash: zero output",
                 cudaMemsetAsync(out, 0, (size_t)(shape.batch * shape.queries * shape.heads * D) * 2,
                                 osp_cuda_stream()));
    return lse ? osp_map("attention_flash: lse of no keys", lse, OSP_F32, lse, OSP_F32,
                         shape.batch * shape.heads * shape.queries, no_keys_op{})
               : OSP_OK;
  }

  FlashParams p;
  p.q = (const bf16 *)q, p.k = (const bf16 *)k, p.v = (const bf16 *)v;
  p.mask = key_mask, p.out = (bf16 *)out, p.lse = lse, p.bias = bias;
  p.nq = (int)shape.queries, p.nk = (int)shape.keys, p.heads = (int)shape.heads, p.kv_batch = (int)shape.kv_batch;
  p.sl2 = fabsf(scale) * kLog2e;
  if (p.sl2 == 0.0f) p.sl2 = 1e-30f; /* scale 0: every weight 2^(≈0) = 1 */
  p.negate = scale < 0.0f;
  const int batch = (int)shape.batch;

  const char *path = getenv("OSP_FLASH_PATH");
  const bool force_fa2 = path != nullptr && strcmp(path, "fa2") == 0;
  if (D == 128 && !p.negate && !bias && !force_fa2 && wgmma_available()) {
    const osp_status status = launch_fa3<true>(p, batch, multiprocessors());
    if (status != OSP_ERR_UNSUPPORTED) return status;
  }
  return launch_fa2_for(p, batch, (int)D);
}

extern "C" osp_status osp_cuda_attention(const void *q, const void *k, const void *v,
                                         const uint8_t *key_mask, float scale, void *out,
                                         float *lse, osp_cuda_attention_shape shape) {
  return attend("osp_cuda_attention", q, k, v, key_mask, nullptr, scale, out, lse, shape);
}

extern "C" osp_status osp_cuda_flash_attention_biased(const void *q, const void *k, const void *v,
                                                      const uint8_t *key_mask, const float *bias, float scale,
                                                      void *out, osp_cuda_attention_shape shape) {
  if (shape.head_dim == 384)
    return osp_fail(OSP_ERR_UNSUPPORTED, "osp_cuda_flash_attention_biased: head_dim 384 has no biased kernel");
  return attend("osp_cuda_flash_attention_biased", q, k, v, key_mask, bias, scale, out, nullptr, shape);
}
