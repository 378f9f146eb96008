/* osp_attention_forward_lse and osp_attention_backward (ops/grad.h) on CUDA against the same ops on
 * the CPU (src/cpu/attention.c, src/cpu/attention_backward.c), through the ops API, on random
 * inputs rounded to bf16 first so that both sides see the same numbers: head_dim 128, 64 and 32,
 * Nq ≠ Nk and lengths that are no multiple of the kernels' 64-row tiles (1, 77, 130, 300, 1037,
 * 2047), a key/value batch smaller than the query batch (shared keys: dk, dv sum over the query
 * rows b ≡ key row mod Bk), key masks with padded keys and with batch rows whose queries have
 * every key masked, negative and zero scales, gradients that are not zero before the call (the
 * backward adds), gradients in bf16 and in f32, and calls that want only some of dq, dk, dv.
 * Each case runs on the default forward path (the wgmma kernel for head_dim 128 on an sm_90a GPU)
 * and again with OSP_FLASH_PATH=fa2 (the mma.sync kernel).
 *
 * What is checked, per case:
 *   lse:  |lse_gpu − lse_cpu| ≤ 1e-3 · max(1, |lse_cpu|), and −inf exactly where every key of the
 *         query is masked. Both sum the same e^(s − m) in f32 (the GPU with ex2.approx, relative
 *         error ~2^-22): the difference is ~1e-6; 1e-3 leaves room and still catches a wrong
 *         scale, base or row (those move lse by O(1)).
 *   out:  max |out_gpu − out_cpu| ≤ 2^-7 · max|v| (as test_cuda_attention: P and out in bf16).
 *   dq, dk, dv: the CPU backward runs on the GPU's out and lse (so that the backward alone is
 *         compared). With contribution c = ref − initial,
 *           max |got − ref| ≤ 2e-2 · max|c| (+ 2^-8 · |ref| per element for a bf16 gradient), and
 *           ‖got − ref‖₂ / ‖c‖₂ ≤ 1e-2.
 *         Why: the GPU rounds P and dS to bf16 before the tensor-core products (relative error
 *         ≤ 2^-9 per term), so a gradient entry, a sum of n such terms, is off by at most
 *         2^-9 · Σ|terms|; relative to the largest entry that is ~2e-3 unless the terms cancel,
 *         which dS (whose rows sum to 0) makes them do for dq. f32 accumulation in another order
 *         and ex2.approx add ~1e-6. A bf16 gradient is rounded once more when the sum is stored
 *         (≤ 2^-9 of the stored value). Where dq and dk are zero in exact arithmetic (one key:
 *         a constant softmax), both sides hold f32 rounding noise, and max|c| gives way to a
 *         floor a thousand times that noise (noise_floor). Measured errors are printed, per
 *         tensor, at the end.
 *   no gradient where none is due: rows of dq of queries with every key masked, and rows of dk, dv
 *         of keys masked for every query row that reads them, keep their initial values exactly.
 *   determinism: a second backward from the same initial gradients gives the same bytes.
 * A head_dim the kernels do not cover (96) is refused with a message that lists those they do.
 * Prints "cuda attention grad: N passed, N failed"; exits 77 (skip) where there is no GPU. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda.h"
#include "gpu_test.h"
#include "ops/grad.h"
#include "ops/ops.h"

const char gpu_test_name[] = "test_cuda_attention_grad";

enum { WANT_DQ = 1, WANT_DK = 2, WANT_DV = 4, WANT_ALL = 7 };

typedef struct {
  int64_t B, Bk, Nq, Nk, heads, D;
  int mask_mode; /* 0 none; 1 ~30% of keys masked at random, batch row 0 entirely; 2 a tail of keys
                  * masked, its length depending on the batch row, the last row entirely */
  float scale;
  osp_dtype grad_dtype;
  int wants; /* WANT_* bits */
} grad_case;

static const uint64_t SEED = 7; /* of the inputs' Philox streams */

static osp_tensor gpu_bytes(int64_t bytes) {
  osp_tensor t = osp_tensor_make(NULL, OSP_U8, OSP_CUDA, 1, &bytes);
  must(osp_cuda_malloc((size_t)bytes, &t.data), "osp_cuda_malloc");
  return t;
}

/* ---- Comparisons ---------------------------------------------------------------------------- */

/* The worst measured error of each compared quantity over every case, for the closing report. */
enum { Q_LSE, Q_OUT, Q_DQ, Q_DK, Q_DV, QUANTITIES };
static const char *quantity_names[QUANTITIES] = {"lse", "out", "dq", "dk", "dv"};
static double worst_max[QUANTITIES], worst_l2[QUANTITIES];
static char worst_case[QUANTITIES][200];

static void note(int quantity, double max_ratio, double l2, const char *name) {
  if (max_ratio > worst_max[quantity]) {
    worst_max[quantity] = max_ratio;
    snprintf(worst_case[quantity], sizeof worst_case[quantity], "%s", name);
  }
  if (l2 > worst_l2[quantity]) worst_l2[quantity] = l2;
}

/* A gradient against its reference: ref = initial + contribution (all host f32). The bounds scale
 * with the largest contribution, or with `floor` where that is larger (see noise_floor). */
static void check_gradient(int quantity, const char *name, const osp_tensor *gpu, const float *initial,
                           const float *ref, bool bf16, double floor) {
  osp_tensor got = to_host(gpu);
  const float *g = got.data;
  const int64_t n = osp_tensor_numel(gpu);
  double largest = 0.0, sq_error = 0.0, sq_contribution = 0.0;
  for (int64_t i = 0; i < n; i++) {
    const double c = (double)ref[i] - initial[i];
    largest = fmax(largest, fabs(c));
    sq_contribution += c * c;
  }
  largest = fmax(largest, floor);
  sq_contribution = fmax(sq_contribution, floor * floor * (double)n);
  double worst = 0.0;
  int bad = 0, nonfinite = 0;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(g[i])) nonfinite++;
    const double e = fabs((double)g[i] - ref[i]);
    const double allowed = 2e-2 * largest + (bf16 ? fabs((double)ref[i]) / 256.0 : 0.0) + 1e-30;
    if (!(e <= allowed)) bad++;
    worst = fmax(worst, e);
    sq_error += e * e;
  }
  const double max_ratio = largest > 0 ? worst / largest : worst, l2 = sqrt(sq_error / fmax(sq_contribution, 1e-300));
  note(quantity, max_ratio, l2, name);
  const bool ok = bad == 0 && nonfinite == 0 && l2 <= 1e-2;
  if (!ok)
    fprintf(stderr, "%s: %s: max error %.3g of max contribution %.3g (%.3g), rel l2 %.3g, %d over the bound, %d non-finite\n",
            name, quantity_names[quantity], worst, largest, max_ratio, l2, bad, nonfinite);
  CHECK(ok);
  free(got.data);
}

/* The largest |x| of a host tensor, and the largest Euclidean norm of its rows of D. */
static double max_abs(const osp_tensor *t) {
  double m = 0.0;
  for (int64_t i = 0; i < osp_tensor_numel(t); i++) m = fmax(m, fabs(((const float *)t->data)[i]));
  return m;
}
static double max_row_norm(const osp_tensor *t, int64_t D) {
  double m = 0.0;
  const float *x = t->data;
  for (int64_t r = 0; r < osp_tensor_numel(t) / D; r++) {
    double sq = 0.0;
    for (int64_t d = 0; d < D; d++) sq += (double)x[r * D + d] * x[r * D + d];
    m = fmax(m, sqrt(sq));
  }
  return m;
}

/* Where dq and dk are (nearly) zero in exact arithmetic, their computed values are f32 rounding
 * noise on both sides: with one key the softmax is constant and dS = P·(dP − δ) is the difference
 * of two f32 dot products of the same value (dP = dout·v, δ = dout·out, out = v), of magnitude
 * ε_f32·|dout|·|v|. The bounds for dq (dk) therefore never go below 1e-4·|scale|·max|k|·M
 * (max|q|·M), M = max‖dout_i‖·max‖v_j‖ bounding every |dP| and |δ|: a thousand times that noise
 * and, on these inputs, far under the contributions of the cases where they are not zero. */
static double noise_floor(const osp_tensor *other, const osp_tensor *dout, const osp_tensor *v, float scale,
                          int64_t D) {
  return 1e-4 * fabs((double)scale) * max_abs(other) * max_row_norm(dout, D) * max_row_norm(v, D);
}

/* Rows of `count` values of a gradient that must have kept their initial values exactly. */
static int changed_values(const osp_tensor *gpu, const float *initial, const bool *row_untouched, int64_t rows,
                          int64_t count) {
  osp_tensor got = to_host(gpu);
  const float *g = got.data;
  int changed = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; row_untouched[r] && i < count; i++) changed += g[r * count + i] != initial[r * count + i];
  free(got.data);
  return changed;
}

/* ---- One case ------------------------------------------------------------------------------- */

static void run_case(const grad_case *c, const char *path) {
  char name[200];
  snprintf(name, sizeof name, "[%s] B=%lld Bk=%lld Nq=%lld Nk=%lld heads=%lld D=%lld mask=%d scale=%g %s wants=%d",
           path, (long long)c->B, (long long)c->Bk, (long long)c->Nq, (long long)c->Nk, (long long)c->heads,
           (long long)c->D, c->mask_mode, c->scale, osp_dtype_name(c->grad_dtype), c->wants);
  const int64_t q_shape[4] = {c->B, c->Nq, c->heads, c->D}, kv_shape[4] = {c->Bk, c->Nk, c->heads, c->D};
  const int64_t lse_shape[3] = {c->B, c->heads, c->Nq};
  const bool bf16_grads = c->grad_dtype == OSP_BF16;

  /* Inputs, and the CPU's forward */
  osp_tensor q = host_random(SEED, 4, q_shape, 0.0f, 1.0f, true);
  osp_tensor k = host_random(SEED, 4, kv_shape, 0.0f, 1.0f, true);
  osp_tensor v = host_random(SEED, 4, kv_shape, 0.0f, 1.0f, true);
  osp_tensor dout = host_random(SEED, 4, q_shape, 0.0f, 1.0f, true);
  uint8_t *mask_bytes = c->mask_mode ? key_mask(c->mask_mode, SEED, next_stream++, c->B, c->Nk) : NULL;
  osp_tensor mask = osp_tensor_make(mask_bytes, OSP_U8, OSP_CPU, 2, (const int64_t[]){c->B, c->Nk});
  const osp_tensor *host_mask = mask_bytes ? &mask : NULL;
  osp_tensor cpu_out = host_like(&q), cpu_lse = host_zeros(3, lse_shape);
  const int64_t fwd_scratch_bytes = (int64_t)osp_attention_scratch_bytes(OSP_CPU);
  osp_tensor fwd_scratch = osp_tensor_make(malloc((size_t)fwd_scratch_bytes), OSP_U8, OSP_CPU, 1, &fwd_scratch_bytes);
  must(osp_attention_forward_lse(&q, &k, &v, host_mask, c->scale, &fwd_scratch, &cpu_out, &cpu_lse), "cpu forward");

  /* The GPU's forward with lse, into outputs poisoned with NaN (every value must be written) */
  osp_tensor gq = on_gpu(&q, OSP_BF16), gk = on_gpu(&k, OSP_BF16), gv = on_gpu(&v, OSP_BF16);
  osp_tensor gdout = on_gpu(&dout, OSP_BF16), gmask = {0};
  if (mask_bytes) gmask = on_gpu(&mask, OSP_U8);
  const osp_tensor *dev_mask = mask_bytes ? &gmask : NULL;
  osp_tensor poison_out = host_like(&q), poison_lse = host_like(&cpu_lse);
  for (int64_t i = 0; i < osp_tensor_numel(&q); i++) ((float *)poison_out.data)[i] = NAN;
  for (int64_t i = 0; i < osp_tensor_numel(&cpu_lse); i++) ((float *)poison_lse.data)[i] = NAN;
  osp_tensor gout = on_gpu(&poison_out, OSP_BF16), glse = on_gpu(&poison_lse, OSP_F32);
  free(poison_out.data), free(poison_lse.data);
  osp_status st = osp_attention_forward_lse(&gq, &gk, &gv, dev_mask, c->scale, NULL, &gout, &glse);
  if (st == OSP_OK) st = osp_device_synchronize(OSP_CUDA);
  if (st != OSP_OK) fprintf(stderr, "%s: forward_lse: %s\n", name, osp_last_error());
  CHECK(st == OSP_OK);
  osp_tensor out = to_host(&gout), lse = to_host(&glse);
  {
    const float *got = lse.data, *want = cpu_lse.data;
    double worst = 0.0;
    int bad = 0;
    for (int64_t i = 0; i < osp_tensor_numel(&lse); i++) {
      const bool both_inf = isinf(want[i]) && want[i] < 0 && isinf(got[i]) && got[i] < 0;
      const double e = both_inf ? 0.0 : fabs((double)got[i] - want[i]);
      if (!(e <= 1e-3 * fmax(1.0, fabs((double)want[i])))) bad++;
      if (!both_inf) worst = fmax(worst, isfinite(e) ? e : INFINITY);
    }
    note(Q_LSE, worst, 0.0, name);
    if (bad) fprintf(stderr, "%s: lse: %d values off (worst %.3g)\n", name, bad, worst);
    CHECK(bad == 0);
    double v_max = 0.0, out_worst = 0.0;
    for (int64_t i = 0; i < osp_tensor_numel(&v); i++) v_max = fmax(v_max, fabs(((float *)v.data)[i]));
    for (int64_t i = 0; i < osp_tensor_numel(&out); i++) {
      const double e = fabs((double)((float *)out.data)[i] - ((float *)cpu_out.data)[i]);
      out_worst = fmax(out_worst, isfinite(e) ? e : INFINITY);
    }
    note(Q_OUT, out_worst / v_max, 0.0, name);
    if (!(out_worst <= v_max / 128.0)) fprintf(stderr, "%s: out: max error %.3g (bound %.3g)\n", name, out_worst, v_max / 128);
    CHECK(out_worst <= v_max / 128.0);
  }

  /* The CPU's backward on the GPU's out and lse: the contribution alone, from zero gradients */
  const osp_tensor *shapes[3] = {&q, &k, &k};
  osp_tensor contribution[3], init[3], ref[3];
  const int64_t bwd_scratch_bytes = (int64_t)osp_attention_backward_scratch_bytes(OSP_CPU, q.shape);
  osp_tensor bwd_scratch = osp_tensor_make(malloc((size_t)bwd_scratch_bytes), OSP_U8, OSP_CPU, 1, &bwd_scratch_bytes);
  for (int i = 0; i < 3; i++) contribution[i] = host_like(shapes[i]);
  must(osp_attention_backward(&q, &k, &v, host_mask, c->scale, &out, &lse, &dout, &bwd_scratch, &contribution[0],
                              &contribution[1], &contribution[2]),
       "cpu backward");
  /* Initial gradients of the contribution's size, representable in the gradient's dtype */
  for (int i = 0; i < 3; i++) {
    const float *cv = contribution[i].data;
    double sq = 0.0;
    const int64_t n = osp_tensor_numel(&contribution[i]);
    for (int64_t j = 0; j < n; j++) sq += (double)cv[j] * cv[j];
    const float rms = (float)sqrt(sq / (double)n) + 1e-3f;
    init[i] = host_random(SEED, 4, shapes[i]->shape, 0.0f, rms, bf16_grads);
    ref[i] = host_like(shapes[i]);
    for (int64_t j = 0; j < n; j++) ((float *)ref[i].data)[j] = ((float *)init[i].data)[j] + cv[j];
  }

  /* The GPU's backward, twice from the same initial gradients */
  const int64_t scratch_bytes = (int64_t)osp_attention_backward_scratch_bytes(OSP_CUDA, gq.shape);
  osp_tensor gscratch = gpu_bytes(scratch_bytes);
  osp_tensor grads[2][3];
  void *first_bytes[3] = {NULL, NULL, NULL};
  for (int run = 0; run < 2; run++) {
    for (int i = 0; i < 3; i++) grads[run][i] = on_gpu(&init[i], c->grad_dtype);
    osp_tensor *want[3];
    for (int i = 0; i < 3; i++) want[i] = c->wants & (1 << i) ? &grads[run][i] : NULL;
    st = osp_attention_backward(&gq, &gk, &gv, dev_mask, c->scale, &gout, &glse, &gdout, &gscratch, want[0],
                                want[1], want[2]);
    if (st == OSP_OK) st = osp_device_synchronize(OSP_CUDA);
    if (st != OSP_OK) fprintf(stderr, "%s: backward: %s\n", name, osp_last_error());
    CHECK(st == OSP_OK);
    for (int i = 0; i < 3; i++) {
      const size_t bytes = osp_tensor_bytes(&grads[run][i]);
      if (run == 0) {
        first_bytes[i] = malloc(bytes);
        must(osp_cuda_copy_to_host(first_bytes[i], grads[run][i].data, bytes), "download");
      } else {
        void *again = malloc(bytes);
        must(osp_cuda_copy_to_host(again, grads[run][i].data, bytes), "download");
        const bool same = memcmp(again, first_bytes[i], bytes) == 0;
        if (!same) fprintf(stderr, "%s: %s differs between two runs\n", name, quantity_names[Q_DQ + i]);
        CHECK(same);
        free(again);
      }
    }
  }

  /* Values: wanted gradients against the reference, unwanted ones untouched */
  for (int i = 0; i < 3; i++) {
    if (c->wants & (1 << i)) {
      const double floor = i == 2 ? 0.0 : noise_floor(i == 0 ? &k : &q, &dout, &v, c->scale, c->D);
      check_gradient(Q_DQ + i, name, &grads[0][i], init[i].data, ref[i].data, bf16_grads, floor);
    } else {
      const int64_t rows = shapes[i]->shape[0] * shapes[i]->shape[1];
      bool *all = malloc((size_t)rows);
      memset(all, 1, (size_t)rows);
      const int changed = changed_values(&grads[0][i], init[i].data, all, rows, c->heads * c->D);
      if (changed) fprintf(stderr, "%s: %s not wanted but %d values changed\n", name, quantity_names[Q_DQ + i], changed);
      CHECK(changed == 0);
      free(all);
    }
  }

  /* No gradient where none is due: dq rows of fully masked queries; dk, dv rows of keys masked for
   * every query row that reads them */
  if (mask_bytes) {
    bool *query_untouched = calloc((size_t)(c->B * c->Nq), 1), *key_untouched = calloc((size_t)(c->Bk * c->Nk), 1);
    int fully_masked = 0, never_read = 0;
    for (int64_t b = 0; b < c->B; b++) {
      bool any = false;
      for (int64_t j = 0; j < c->Nk; j++) any = any || mask_bytes[b * c->Nk + j];
      for (int64_t n = 0; n < c->Nq; n++) query_untouched[b * c->Nq + n] = !any;
      fully_masked += !any;
    }
    for (int64_t r = 0; r < c->Bk; r++)
      for (int64_t j = 0; j < c->Nk; j++) {
        bool read = false;
        for (int64_t b = r; b < c->B; b += c->Bk) read = read || mask_bytes[b * c->Nk + j];
        key_untouched[r * c->Nk + j] = !read;
        never_read += !read;
      }
    int changed = 0;
    if (c->wants & WANT_DQ) changed += changed_values(&grads[0][0], init[0].data, query_untouched, c->B * c->Nq, c->heads * c->D);
    for (int i = 1; i < 3; i++)
      if (c->wants & (1 << i))
        changed += changed_values(&grads[0][i], init[i].data, key_untouched, c->Bk * c->Nk, c->heads * c->D);
    if (changed)
      fprintf(stderr, "%s: %d gradient values changed where none is due (%d batch rows fully masked, %d keys never read)\n",
              name, changed, fully_masked, never_read);
    CHECK(changed == 0);
    free(query_untouched);
    free(key_untouched);
  }

  for (int i = 0; i < 3; i++) {
    free(contribution[i].data), free(init[i].data), free(ref[i].data), free(first_bytes[i]);
    osp_cuda_free(grads[0][i].data), osp_cuda_free(grads[1][i].data);
  }
  osp_tensor *host[] = {&q, &k, &v, &dout, &cpu_out, &cpu_lse, &out, &lse, &fwd_scratch, &bwd_scratch};
  for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]->data);
  free(mask_bytes);
  osp_tensor *device[] = {&gq, &gk, &gv, &gdout, &gout, &glse, &gscratch, &gmask};
  for (size_t i = 0; i < sizeof device / sizeof device[0]; i++)
    if (device[i]->data) osp_cuda_free(device[i]->data);
}

static void run_all(const char *path) {
  for (int di = 0; di < 3; di++) {
    const int64_t D = di == 0 ? 128 : di == 1 ? 64 : 32;
    const float scale = 1.0f / sqrtf((float)D);
    const osp_dtype bf = OSP_BF16, f32 = OSP_F32;
    const grad_case cases[] = {
        {1, 1, 1, 1, 1, D, 0, scale, f32, WANT_ALL},
        {1, 1, 77, 130, 2, D, 0, scale, bf, WANT_ALL},
        {1, 1, 130, 77, 3, D, 0, scale, f32, WANT_ALL},
        {2, 1, 130, 300, 2, D, 1, scale, f32, WANT_ALL}, /* shared keys; row 0 fully masked */
        {3, 1, 300, 77, 1, D, 2, scale, bf, WANT_ALL},   /* tails masked; the last row fully */
        {4, 2, 77, 300, 2, D, 2, 0.3f, f32, WANT_ALL},   /* Bk = 2 of B = 4 */
        {1, 1, 300, 1, 2, D, 0, scale, bf, WANT_ALL},
        {2, 1, 100, 130, 2, D, 1, -0.2f, f32, WANT_ALL}, /* negative scale */
        {2, 1, 100, 130, 1, D, 2, 0.0f, f32, WANT_ALL},  /* scale 0: uniform weights */
        {2, 2, 77, 130, 2, D, 1, scale, bf, WANT_DQ},
        {2, 1, 130, 77, 2, D, 1, scale, f32, WANT_DK | WANT_DV},
        {2, 1, 130, 77, 2, D, 2, scale, bf, WANT_DV},
        {1, 1, 1037, 1000, 2, D, 0, scale, bf, WANT_ALL}, /* many tiles both ways */
        {4, 1, 300, 300, 2, D, 1, scale, f32, WANT_ALL},  /* a key block walks 4 query rows */
    };
    const size_t count = di == 0 ? sizeof cases / sizeof cases[0] : 8;
    for (size_t i = 0; i < count; i++) run_case(&cases[i], path);
    if (di == 0) { /* one long sequence at the production head dim */
      const grad_case longer = {1, 1, 2047, 4099, 1, D, 0, scale, f32, WANT_ALL};
      run_case(&longer, path);
    }
  }
}

int main(void) {
  if (osp_cuda_init() != OSP_OK) {
    printf("test_cuda_attention_grad: skipped: no usable GPU (%s)\n", osp_last_error());
    return 77;
  }

  /* A head dim the kernels do not cover is refused, and the message lists those they do. */
  {
    const int64_t q_shape[4] = {1, 8, 1, 96};
    osp_tensor hq = host_random(SEED, 4, q_shape, 0.0f, 1.0f, true);
    osp_tensor hlse = host_random(SEED, 3, (const int64_t[]){1, 1, 8}, 0.0f, 1.0f, false);
    osp_tensor gq = on_gpu(&hq, OSP_BF16), glse = on_gpu(&hlse, OSP_F32), gd = on_gpu(&hq, OSP_BF16);
    osp_tensor gscratch = gpu_bytes((int64_t)osp_attention_backward_scratch_bytes(OSP_CUDA, q_shape));
    const osp_status st = osp_attention_backward(&gq, &gq, &gq, NULL, 1.0f, &gq, &glse, &gq, &gscratch, &gd, NULL, NULL);
    CHECK(st == OSP_ERR_UNSUPPORTED);
    CHECK(strstr(osp_last_error(), "head_dim 96") != NULL && strstr(osp_last_error(), "32, 64, 128") != NULL);
    free(hq.data), free(hlse.data);
    osp_cuda_free(gq.data), osp_cuda_free(glse.data), osp_cuda_free(gd.data), osp_cuda_free(gscratch.data);
  }

  run_all("default");
  setenv("OSP_FLASH_PATH", "fa2", 1);
  run_all("fa2");
  unsetenv("OSP_FLASH_PATH");

  printf("worst errors over every case (max: of the largest contribution; lse: absolute):\n");
  for (int i = 0; i < QUANTITIES; i++)
    printf("  %-4s max %.3g  rel l2 %.3g  (%s)\n", quantity_names[i], worst_max[i], worst_l2[i], worst_case[i]);
  return test_summary("cuda attention grad");
}
