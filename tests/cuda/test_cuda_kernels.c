/* The element-wise and row-wise CUDA kernels (src/cuda/cuda.h) against the CPU backend
 * (src/cpu/cpu.h) on random inputs.
 *
 * Inputs are rounded to each storage dtype before the float32 CPU reference runs, so what is left
 * to differ is the GPU's f32 arithmetic and the rounding of its output. The error of an output is
 * max|gpu − cpu| / max|cpu|: within 1e-5 for f32 storage and 2⁻⁸ for bf16. Conversion, randn
 * and the row gather must agree bit for bit, and patchify / unpatchify (pure movement) exactly.
 * Each kernel runs on its vector path (aligned, widths multiples of 8) and on its value-by-value
 * path (widths such as 37, or arrays one element off the 16-byte grid).
 *
 * Needs a GPU: without one it says so and exits with 77 (skipped), counting nothing. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/rng.h"
#include "cpu/add.h"
#include "cpu/cpu.h"
#include "cuda/cuda.h"
#include "gpu_test.h"

const char gpu_test_name[] = "test_cuda_kernels";

static const double F32_TOLERANCE = 1e-5, BF16_TOLERANCE = 1.0 / 256;
static const float EPS = 1e-6f;

static double tolerance(osp_dtype dtype) {
  return dtype == OSP_BF16 ? BF16_TOLERANCE : F32_TOLERANCE;
}

/* ---- Host helpers ---------------------------------------------------------------------------- */

/* A label for the case under test, in a buffer reused by the next call. */
__attribute__((format(printf, 1, 2))) static const char *label(const char *fmt, ...) {
  static char buffer[256];
  va_list args;
  va_start(args, fmt);
  vsnprintf(buffer, sizeof buffer, fmt, args);
  va_end(args);
  return buffer;
}

/* n samples of N(mean, std²) from the next Philox stream of seed 2025. */
static float *random_floats(size_t n, float mean, float std) {
  float *x = xmalloc(n * sizeof *x);
  random_fill(x, n, 2025, next_stream++, mean, std, false);
  return x;
}

/* A random integer in [0, bound). */
static uint32_t random_below(uint32_t bound) {
  static uint32_t counter;
  const osp_philox_ctr c = {{counter++, 0, 0, 0}};
  const osp_philox_key key = {{7, 11}};
  return (uint32_t)((uint64_t)osp_philox4x32_10(c, key).v[0] * bound >> 32);
}

/* max|got − want| / max|want| ≤ tol (a NaN where want has none counts as infinite error). */
static void check_close(const char *what, const float *got, const float *want, size_t n,
                        double tol) {
  double worst = 0.0, largest = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    const double error = isnan(got[i]) != isnan(want[i]) ? INFINITY
                         : isnan(want[i])                ? 0.0
                                                         : fabs((double)got[i] - want[i]);
    if (error > worst) worst = error, at = i;
    if (fabs(want[i]) > largest) largest = fabs(want[i]);
  }
  const bool ok = worst <= tol * largest;
  if (!ok)
    fprintf(stderr, "%s: error %.3g at %zu (got %.9g, want %.9g), max |want| %.3g, tolerance %.3g\n",
            what, worst, at, got[at], want[at], largest, tol);
  CHECK(ok);
}

/* Equal bytes; on failure says how many elements (of elem_bytes) differ and where the first is. */
static void check_bits(const char *what, const void *got, const void *want, size_t n,
                       size_t elem_bytes) {
  size_t differ = 0, first = 0;
  for (size_t i = 0; i < n; i++)
    if (memcmp((const char *)got + i * elem_bytes, (const char *)want + i * elem_bytes, elem_bytes) &&
        differ++ == 0)
      first = i;
  if (differ) fprintf(stderr, "%s: %zu of %zu elements differ, the first at %zu\n", what, differ, n, first);
  CHECK(differ == 0);
}

/* ---- Device helpers -------------------------------------------------------------------------- */

/* Device memory: base from osp_cuda_malloc, data `offset` elements in (offset 1 leaves data off
 * the 16-byte grid, for the kernels' value-by-value paths). */
typedef struct {
  void *base, *data;
} dev_buf;

static dev_buf dev_alloc(size_t n, size_t elem_bytes, size_t offset) {
  dev_buf b;
  must(osp_cuda_malloc((n + offset) * elem_bytes + 1, &b.base), "osp_cuda_malloc");
  b.data = (char *)b.base + offset * elem_bytes;
  return b;
}

static dev_buf dev_upload_bytes(const void *host, size_t n, size_t elem_bytes, size_t offset) {
  dev_buf b = dev_alloc(n, elem_bytes, offset);
  must(osp_cuda_copy_to_device(b.data, host, n * elem_bytes), "osp_cuda_copy_to_device");
  return b;
}

/* x stored as dtype on the device. */
static dev_buf dev_upload(const float *x, size_t n, osp_dtype dtype, size_t offset) {
  void *host = xmalloc(n * osp_dtype_size(dtype));
  osp_convert_from_f32(dtype, x, host, n);
  dev_buf b = dev_upload_bytes(host, n, osp_dtype_size(dtype), offset);
  free(host);
  return b;
}

static void dev_download_bytes(dev_buf b, size_t bytes, void *out) {
  must(osp_cuda_copy_to_host(out, b.data, bytes), "osp_cuda_copy_to_host");
}

/* n values stored as dtype, as floats. */
static float *dev_download(dev_buf b, size_t n, osp_dtype dtype) {
  void *host = xmalloc(n * osp_dtype_size(dtype));
  dev_download_bytes(b, n * osp_dtype_size(dtype), host);
  float *out = xmalloc(n * sizeof *out);
  osp_convert_to_f32(dtype, host, out, n);
  free(host);
  return out;
}

/* Runs the kernel's output through the comparison: out (n values of dtype) against want,
 * rounded through dtype first when exact is set (then the two must be equal). */
static void check_output(const char *what, dev_buf out, size_t n, osp_dtype dtype, float *want,
                         bool exact) {
  float *got = dev_download(out, n, dtype);
  if (exact) round_through(dtype, want, n);
  check_close(what, got, want, n, exact ? 0.0 : tolerance(dtype));
  free(got);
}

static const char *name(osp_dtype dtype) { return osp_dtype_name(dtype); }

/* ---- Conversion and randn ---------------------------------------------------------------- */

/* Values whose conversion has a rule of its own: signed zeros, infinities, NaNs (one with a
 * payload), ties of bf16 rounding, an overflow, a subnormal. */
static void put_special_values(float *x, size_t n) {
  const uint32_t bits[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                           0x7fa00001u, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x00012345u};
  for (size_t i = 0; i < n && i < sizeof bits / sizeof bits[0]; i++) memcpy(&x[i], &bits[i], 4);
}

static void test_convert(void) {
  const size_t sizes[] = {1, 1000, 13832 + 3};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    for (size_t offset = 0; offset < 2; offset++) {
      const size_t n = sizes[s];
      float *x = random_floats(n, 0.0f, 3.0f), *back = xmalloc(n * 4);
      put_special_values(x, n);
      uint16_t *half = xmalloc(n * 2), *got_half = xmalloc(n * 2);
      osp_convert_from_f32(OSP_BF16, x, half, n);
      osp_convert_to_f32(OSP_BF16, half, back, n);
      dev_buf f32 = dev_upload_bytes(x, n, 4, offset), bf16 = dev_alloc(n, 2, offset);
      dev_buf out = dev_alloc(n, 4, offset);

      const char *what = label("convert f32 -> bf16, n %zu, offset %zu", n, offset);
      if (ran(osp_cuda_convert(f32.data, OSP_F32, bf16.data, OSP_BF16, (int64_t)n), what)) {
        dev_download_bytes(bf16, n * 2, got_half);
        check_bits(what, got_half, half, n, 2);
      }
      what = label("convert bf16 -> f32, n %zu, offset %zu", n, offset);
      if (ran(osp_cuda_convert(bf16.data, OSP_BF16, out.data, OSP_F32, (int64_t)n), what)) {
        float *got = xmalloc(n * 4);
        dev_download_bytes(out, n * 4, got);
        check_bits(what, got, back, n, 4);
        free(got);
      }
      what = label("convert f32 -> f32, n %zu, offset %zu", n, offset);
      if (ran(osp_cuda_convert(f32.data, OSP_F32, out.data, OSP_F32, (int64_t)n), what)) {
        float *got = xmalloc(n * 4);
        dev_download_bytes(out, n * 4, got);
        check_bits(what, got, x, n, 4);
        free(got);
      }
      osp_cuda_free(f32.base), osp_cuda_free(bf16.base), osp_cuda_free(out.base);
      free(x), free(back), free(half), free(got_half);
    }
  }
}

static void test_randn(void) {
  const struct {
    uint64_t seed;
    uint32_t stream;
    uint64_t offset;
    size_t n;
    float scale;
  } cases[] = {
      {42, 3, 0, 1000, 1.0f},
      {0x0123456789ABCDEFull, 7, (1ull << 34) + 5, 1001, 0.02f}, /* counter above 2³² blocks */
      {7, 0, 3, 1, 2.0f},                                       /* one value, mid-block */
      {2024, 11, 0, (size_t)1 << 22, 1.0f},
  };
  const osp_dtype dtypes[] = {OSP_F32, OSP_BF16};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const size_t n = cases[c].n;
    float *want = xmalloc(n * 4);
    osp_randn(cases[c].seed, cases[c].stream, cases[c].offset, want, n);
    for (size_t i = 0; i < n; i++) want[i] *= cases[c].scale;
    for (size_t d = 0; d < 2; d++) {
      const size_t size = osp_dtype_size(dtypes[d]);
      void *want_bits = xmalloc(n * size), *got = xmalloc(n * size);
      osp_convert_from_f32(dtypes[d], want, want_bits, n);
      dev_buf out = dev_alloc(n, size, 0);
      const char *what = label("randn seed %llu stream %u offset %llu n %zu %s",
                               (unsigned long long)cases[c].seed, cases[c].stream,
                               (unsigned long long)cases[c].offset, n, name(dtypes[d]));
      if (ran(osp_cuda_randn(cases[c].seed, cases[c].stream, cases[c].offset, cases[c].scale,
                             out.data, dtypes[d], (int64_t)n),
              what)) {
        dev_download_bytes(out, n * size, got);
        check_bits(what, got, want_bits, n, size);
      }
      osp_cuda_free(out.base);
      free(want_bits), free(got);
    }
    free(want);
  }
}

/* ---- Norms ------------------------------------------------------------------------------- */

typedef struct {
  osp_dtype x, param, y;
} norm_dtypes;

typedef struct {
  bool rms, affine, in_place;
  int64_t rows, C;
  float mean; /* of x: LayerNorm must not lose a small spread beside a large mean */
  size_t offset;
} norm_case;

static void run_norm(norm_case c, norm_dtypes t) {
  const size_t n = (size_t)(c.rows * c.C);
  float *x = random_floats(n, c.mean, 1.0f), *w = random_floats((size_t)c.C, 1.0f, 0.1f);
  float *b = random_floats((size_t)c.C, 0.0f, 0.1f), *want = xmalloc(n * 4);
  round_through(t.x, x, n);
  round_through(t.param, w, (size_t)c.C);
  round_through(t.param, b, (size_t)c.C);
  if (c.rms)
    osp_cpu_rmsnorm(x, w, EPS, want, c.rows, c.C);
  else
    osp_cpu_layernorm(x, c.affine ? w : NULL, c.affine ? b : NULL, EPS, want, c.rows, c.C);

  dev_buf dx = dev_upload(x, n, t.x, c.offset), dw = dev_upload(w, (size_t)c.C, t.param, c.offset);
  dev_buf db = dev_upload(b, (size_t)c.C, t.param, c.offset);
  dev_buf dy = c.in_place ? dx : dev_alloc(n, osp_dtype_size(t.y), c.offset);
  const char *what = label("%s%s rows %lld C %lld mean %g x %s param %s y %s offset %zu%s",
                           c.rms ? "rmsnorm" : "layernorm", c.rms || c.affine ? "" : " (no affine)",
                           (long long)c.rows, (long long)c.C, c.mean, name(t.x), name(t.param),
                           name(t.y), c.offset, c.in_place ? " in place" : "");
  const osp_status status =
      c.rms ? osp_cuda_rmsnorm(dx.data, t.x, dw.data, t.param, EPS, dy.data, t.y, c.rows, c.C)
            : osp_cuda_layernorm(dx.data, t.x, c.affine ? dw.data : NULL,
                                 c.affine ? db.data : NULL, t.param, EPS, dy.data, t.y, c.rows,
                                 c.C);
  if (ran(status, what)) check_output(what, dy, n, t.y, want, false);
  if (!c.in_place) osp_cuda_free(dy.base);
  osp_cuda_free(dx.base), osp_cuda_free(dw.base), osp_cuda_free(db.base);
  free(x), free(w), free(b), free(want);
}

static void test_norms(void) {
  const int64_t shapes[][2] = {{1, 40}, {1000, 5120}, {7, 13824 + 8}, {33, 37}};
  const norm_dtypes dtypes[] = {{OSP_F32, OSP_F32, OSP_F32},
                                {OSP_BF16, OSP_BF16, OSP_BF16},
                                {OSP_BF16, OSP_F32, OSP_BF16},
                                {OSP_BF16, OSP_F32, OSP_F32}};
  for (int kind = 0; kind < 3; kind++) { /* LayerNorm, LayerNorm without affine, RMSNorm */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
        run_norm((norm_case){.rms = kind == 2, .affine = kind == 0, .rows = shapes[s][0],
                             .C = shapes[s][1]},
                 dtypes[d]);
    const norm_case misaligned = {.rms = kind == 2, .affine = kind == 0, .rows = 3, .C = 5120,
                                  .offset = 1};
    run_norm(misaligned, dtypes[0]);
    run_norm(misaligned, dtypes[1]);
    run_norm((norm_case){.rms = kind == 2, .affine = kind == 0, .in_place = true, .rows = 64,
                         .C = 1536},
             dtypes[1]);
  }
  run_norm((norm_case){.affine = true, .rows = 64, .C = 5120, .mean = 1000.0f}, dtypes[0]);
  run_norm((norm_case){.rows = 64, .C = 40, .mean = -1000.0f}, dtypes[0]);
}

/* ---- Activations ------------------------------------------------------------------------- */

typedef osp_status (*cuda_unary)(const void *x, osp_dtype x_dtype, void *y, osp_dtype y_dtype,
                                 int64_t n);
typedef void (*cpu_unary)(const float *x, float *y, int64_t n);

static void run_unary(const char *op, cuda_unary cuda, cpu_unary cpu, size_t n, osp_dtype x_dtype,
                      osp_dtype y_dtype, size_t offset, bool in_place) {
  float *x = random_floats(n, 0.0f, 3.0f), *want = xmalloc(n * 4);
  round_through(x_dtype, x, n);
  cpu(x, want, (int64_t)n);
  dev_buf dx = dev_upload(x, n, x_dtype, offset);
  dev_buf dy = in_place ? dx : dev_alloc(n, osp_dtype_size(y_dtype), offset);
  const char *what = label("%s n %zu x %s y %s offset %zu%s", op, n, name(x_dtype), name(y_dtype),
                           offset, in_place ? " in place" : "");
  if (ran(cuda(dx.data, x_dtype, dy.data, y_dtype, (int64_t)n), what))
    check_output(what, dy, n, y_dtype, want, false);
  if (!in_place) osp_cuda_free(dy.base);
  osp_cuda_free(dx.base);
  free(x), free(want);
}

static void test_activations(void) {
  const struct {
    const char *name;
    cuda_unary cuda;
    cpu_unary cpu;
  } ops[] = {{"gelu_tanh", osp_cuda_gelu_tanh, osp_cpu_gelu_tanh},
             {"silu", osp_cuda_silu, osp_cpu_silu}};
  const size_t sizes[] = {1, 1000, 5120 * 7 + 3};
  const osp_dtype pairs[][2] = {
      {OSP_F32, OSP_F32}, {OSP_BF16, OSP_BF16}, {OSP_BF16, OSP_F32}, {OSP_F32, OSP_BF16}};
  for (size_t o = 0; o < 2; o++) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
      for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++)
        for (size_t offset = 0; offset < 2; offset++)
          run_unary(ops[o].name, ops[o].cuda, ops[o].cpu, sizes[s], pairs[p][0], pairs[p][1],
                    offset, false);
    run_unary(ops[o].name, ops[o].cuda, ops[o].cpu, 4099, OSP_BF16, OSP_BF16, 0, true);
  }
}

/* ---- Row gather -------------------------------------------------------------------------- */

/* index values in [−1, src_rows), the first −1 (a row of zeros). */
static int32_t *random_index(size_t rows, size_t src_rows) {
  int32_t *index = xmalloc(rows * sizeof *index);
  for (size_t i = 0; i < rows; i++) index[i] = (int32_t)random_below((uint32_t)src_rows + 1) - 1;
  index[0] = -1;
  return index;
}

/* The gather on the host, byte for byte. */
static void gather_on_host(const uint8_t *src, const int32_t *index, uint8_t *dst, size_t rows,
                           size_t row_bytes) {
  for (size_t i = 0; i < rows; i++) {
    if (index[i] < 0)
      memset(dst + i * row_bytes, 0, row_bytes);
    else
      memcpy(dst + i * row_bytes, src + (size_t)index[i] * row_bytes, row_bytes);
  }
}

static void run_gather(size_t src_rows, size_t rows, size_t C, size_t elem_bytes, size_t offset) {
  const size_t row_bytes = C * elem_bytes, src_words = (src_rows * row_bytes + 3) / 4;
  uint32_t *src = xmalloc(src_words * 4); /* any bits: the gather moves bytes */
  for (size_t i = 0; i < src_words; i++) src[i] = random_below(UINT32_MAX);
  int32_t *index = random_index(rows, src_rows);
  uint8_t *want = xmalloc(rows * row_bytes), *got = xmalloc(rows * row_bytes);
  gather_on_host((const uint8_t *)src, index, want, rows, row_bytes);

  dev_buf dsrc = dev_upload_bytes(src, src_rows * C, elem_bytes, 0);
  dev_buf dindex = dev_upload_bytes(index, rows, sizeof *index, 0);
  dev_buf ddst = dev_alloc(rows * C, elem_bytes, offset);
  const char *what = label("gather_rows %zu of %zu rows, C %zu, %zu-byte elements, offset %zu",
                           rows, src_rows, C, elem_bytes, offset);
  if (ran(osp_cuda_gather_rows(dsrc.data, dindex.data, ddst.data, (int64_t)rows, (int64_t)C,
                               elem_bytes),
          what)) {
    dev_download_bytes(ddst, rows * row_bytes, got);
    check_bits(what, got, want, rows, row_bytes);
  }
  osp_cuda_free(dsrc.base), osp_cuda_free(dindex.base), osp_cuda_free(ddst.base);
  free(src), free(index), free(want), free(got);
}

/* Wan-14B's Skiparse permutation size, [80640, 5120] bf16: checked, and timed (not judged). */
static void gather_bandwidth(void) {
  const size_t rows = 80640, C = 5120, row_bytes = C * 2, bytes = rows * row_bytes;
  const int repeats = 10;
  int32_t *index = xmalloc(rows * sizeof *index);
  for (size_t i = 0; i < rows; i++) index[i] = (int32_t)i;
  for (size_t i = rows - 1; i > 0; i--) { /* a random permutation */
    const size_t j = random_below((uint32_t)i + 1);
    const int32_t t = index[i];
    index[i] = index[j], index[j] = t;
  }
  index[rows / 2] = -1;
  dev_buf src = dev_alloc(rows * C, 2, 0), dst = dev_alloc(rows * C, 2, 0);
  dev_buf dindex = dev_upload_bytes(index, rows, sizeof *index, 0);
  must(osp_cuda_randn(5, 0, 0, 1.0f, src.data, OSP_BF16, (int64_t)(rows * C)), "osp_cuda_randn");
  const char *what = "gather_rows 80640 x 5120 bf16";
  if (ran(osp_cuda_gather_rows(src.data, dindex.data, dst.data, (int64_t)rows, (int64_t)C, 2),
          what)) {
    uint8_t *host_src = xmalloc(bytes), *want = xmalloc(bytes), *got = xmalloc(bytes);
    dev_download_bytes(src, bytes, host_src);
    dev_download_bytes(dst, bytes, got);
    gather_on_host(host_src, index, want, rows, row_bytes);
    check_bits(what, got, want, rows, row_bytes);
    free(host_src), free(want), free(got);

    osp_cuda_timer *timer;
    double seconds = 0.0;
    osp_status status = osp_cuda_timer_start(&timer);
    for (int r = 0; r < repeats && status == OSP_OK; r++)
      status = osp_cuda_gather_rows(src.data, dindex.data, dst.data, (int64_t)rows, (int64_t)C, 2);
    if (status == OSP_OK) status = osp_cuda_timer_stop(timer, &seconds);
    if (ran(status, "gather_rows timing"))
      printf("test_cuda_kernels: %s: %.1f us, %.2f TB/s (bytes read + written)\n", what,
             seconds / repeats * 1e6, 2.0 * bytes * repeats / seconds / 1e12);
  }
  osp_cuda_free(src.base), osp_cuda_free(dst.base), osp_cuda_free(dindex.base);
  free(index);
}

static void test_gather(void) {
  const size_t cases[][5] = {
      /* src rows, rows, C, element bytes, dst offset (elements) */
      {300, 1000, 40, 2, 0},  {300, 1000, 40, 4, 0},   {64, 200, 5120, 2, 0},
      {64, 100, 13832, 2, 0}, {50, 77, 37, 2, 0},      {50, 77, 37, 4, 0},
      {50, 77, 5120, 2, 1},   {50, 77, 5121, 1, 3},    {10, 1, 5120, 2, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    run_gather(cases[c][0], cases[c][1], cases[c][2], cases[c][3], cases[c][4]);
  gather_bandwidth();
}

/* ---- Modulate and gated add ------------------------------------------------------------ */

/* A [Bm, 6, C] modulation table (what Wan's adaLN gives every block), on the host as float and
 * on the device as dtype; row k of the six is the view [Bm, C] with row stride 6C. */
typedef struct {
  float *host;
  dev_buf dev;
  osp_dtype dtype;
  int64_t Bm, C;
} mod_table;

static mod_table make_table(int64_t Bm, int64_t C, osp_dtype dtype) {
  mod_table t = {random_floats((size_t)(Bm * 6 * C), 0.0f, 0.5f), {0}, dtype, Bm, C};
  round_through(dtype, t.host, (size_t)(Bm * 6 * C));
  t.dev = dev_upload(t.host, (size_t)(Bm * 6 * C), dtype, 0);
  return t;
}

static osp_cpu_rows cpu_view(const mod_table *t, int k) {
  return (osp_cpu_rows){t->host + k * t->C, 6 * t->C, t->Bm};
}

static osp_cuda_rows cuda_view(const mod_table *t, int k) {
  const char *data = (const char *)t->dev.data + (size_t)(k * t->C) * osp_dtype_size(t->dtype);
  return (osp_cuda_rows){data, t->dtype, 6 * t->C, t->Bm};
}

static void free_table(mod_table *t) {
  osp_cuda_free(t->dev.base);
  free(t->host);
}

typedef struct {
  int64_t B, N, C, Bm;
  osp_dtype x, other, table; /* other: y of gated_add (modulate writes x's dtype) */
  size_t offset;
  bool in_place, no_gate;
} batch_case;

static void run_modulate(batch_case c) {
  const size_t n = (size_t)(c.B * c.N * c.C);
  mod_table table = make_table(c.Bm, c.C, c.table);
  float *x = random_floats(n, 0.0f, 1.0f), *want = xmalloc(n * 4);
  round_through(c.x, x, n);
  osp_cpu_modulate(x, cpu_view(&table, 0), cpu_view(&table, 1), want, c.B, c.N, c.C);
  dev_buf dx = dev_upload(x, n, c.x, c.offset);
  dev_buf dy = c.in_place ? dx : dev_alloc(n, osp_dtype_size(c.x), c.offset);
  const char *what = label("modulate B %lld N %lld C %lld Bm %lld x %s table %s offset %zu%s",
                           (long long)c.B, (long long)c.N, (long long)c.C, (long long)c.Bm,
                           name(c.x), name(c.table), c.offset, c.in_place ? " in place" : "");
  if (ran(osp_cuda_modulate(dx.data, cuda_view(&table, 0), cuda_view(&table, 1), dy.data, c.x,
                            c.B, c.N, c.C),
          what))
    check_output(what, dy, n, c.x, want, false);
  if (!c.in_place) osp_cuda_free(dy.base);
  osp_cuda_free(dx.base);
  free_table(&table);
  free(x), free(want);
}

static void run_gated_add(batch_case c) {
  const size_t n = (size_t)(c.B * c.N * c.C);
  mod_table table = make_table(c.Bm, c.C, c.table);
  float *x = random_floats(n, 0.0f, 1.0f), *y = random_floats(n, 0.0f, 1.0f);
  round_through(c.x, x, n);
  round_through(c.other, y, n);
  float *want = xmalloc(n * 4);
  memcpy(want, x, n * 4);
  const osp_cpu_rows no_gate = {NULL, 0, 0};
  osp_cpu_gated_add(want, y, c.no_gate ? no_gate : cpu_view(&table, 2), c.B, c.N, c.C);
  dev_buf dx = dev_upload(x, n, c.x, c.offset), dy = dev_upload(y, n, c.other, c.offset);
  const osp_cuda_rows gate = c.no_gate ? (osp_cuda_rows){NULL, OSP_F32, 0, 0} : cuda_view(&table, 2);
  const char *what = label("gated_add B %lld N %lld C %lld Bm %lld x %s y %s gate %s offset %zu",
                           (long long)c.B, (long long)c.N, (long long)c.C, (long long)c.Bm,
                           name(c.x), name(c.other), c.no_gate ? "none" : name(c.table), c.offset);
  if (ran(osp_cuda_gated_add(dx.data, c.x, dy.data, c.other, gate, c.B, c.N, c.C), what))
    check_output(what, dx, n, c.x, want, false);
  osp_cuda_free(dx.base), osp_cuda_free(dy.base);
  free_table(&table);
  free(x), free(y), free(want);
}

static void test_modulation(void) {
  const int64_t widths[] = {40, 5120, 37}, Bms[] = {4, 2, 1};
  const osp_dtype dtypes[][2] = {
      {OSP_F32, OSP_F32}, {OSP_BF16, OSP_F32}, {OSP_BF16, OSP_BF16}, {OSP_F32, OSP_BF16}};
  for (size_t w = 0; w < 3; w++) {
    for (size_t m = 0; m < 3; m++) {
      for (size_t d = 0; d < 4; d++) {
        batch_case c = {.B = 4, .N = 33, .C = widths[w], .Bm = Bms[m], .x = dtypes[d][0],
                        .other = dtypes[d][1], .table = dtypes[d][1]};
        run_modulate(c);
        run_gated_add(c);
        c.table = dtypes[d][0]; /* the gate in x's dtype, y in the other */
        run_gated_add(c);
      }
    }
  }
  const batch_case misaligned = {.B = 2, .N = 9, .C = 5120, .Bm = 2, .x = OSP_BF16,
                                 .other = OSP_BF16, .table = OSP_F32, .offset = 1};
  run_modulate(misaligned);
  run_gated_add(misaligned);
  batch_case special = {.B = 4, .N = 5, .C = 5120, .Bm = 2, .x = OSP_BF16, .other = OSP_F32,
                        .table = OSP_F32, .in_place = true};
  run_modulate(special);
  special.no_gate = true;
  run_gated_add(special);
  special.C = 37;
  run_gated_add(special);
}

/* ---- Broadcasting add ------------------------------------------------------------------ */

enum { MAX_DIMS = 8 };

/* Row-major strides of an operand of shape `own` read over `shape`: 0 along its size-1
 * dimensions where shape is larger. Returns the operand's element count. */
static int64_t broadcast_strides(int ndim, const int64_t *own, const int64_t *shape,
                                 int64_t *stride) {
  int64_t step = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    stride[d] = own[d] == 1 && shape[d] > 1 ? 0 : step;
    step *= own[d];
  }
  return step;
}

typedef struct {
  int ndim;
  int64_t shape[MAX_DIMS], a_stride[MAX_DIMS], b_stride[MAX_DIMS];
  int64_t a_size, b_size, b_offset; /* b's storage, and where the view starts in it */
} add_case;

static add_case broadcast_case(int ndim, const int64_t *shape, const int64_t *a_shape,
                               const int64_t *b_shape) {
  add_case c = {.ndim = ndim};
  memcpy(c.shape, shape, (size_t)ndim * sizeof *shape);
  c.a_size = broadcast_strides(ndim, a_shape, shape, c.a_stride);
  c.b_size = broadcast_strides(ndim, b_shape, shape, c.b_stride);
  return c;
}

static void run_add(const char *case_name, add_case c, osp_dtype a_dtype, osp_dtype b_dtype,
                    osp_dtype y_dtype, bool y_is_b) {
  int64_t n = 1;
  for (int d = 0; d < c.ndim; d++) n *= c.shape[d];
  float *a = random_floats((size_t)c.a_size, 0.0f, 1.0f), *b = random_floats((size_t)c.b_size, 0.0f, 1.0f);
  float *want = xmalloc((size_t)n * 4);
  round_through(a_dtype, a, (size_t)c.a_size);
  round_through(b_dtype, b, (size_t)c.b_size);
  cpu_add_broadcast(c.ndim, c.shape, a, c.a_stride, b + c.b_offset, c.b_stride, want);
  dev_buf da = dev_upload(a, (size_t)c.a_size, a_dtype, 0), db = dev_upload(b, (size_t)c.b_size, b_dtype, 0);
  const void *b_view = (const char *)db.data + (size_t)c.b_offset * osp_dtype_size(b_dtype);
  dev_buf dy = y_is_b ? db : dev_alloc((size_t)n, osp_dtype_size(y_dtype), 0);
  const char *what = label("add %s a %s b %s y %s%s", case_name, name(a_dtype), name(b_dtype),
                           name(y_dtype), y_is_b ? " (y is b)" : "");
  if (ran(osp_cuda_add(da.data, a_dtype, c.a_stride, b_view, b_dtype, c.b_stride, dy.data, y_dtype,
                       c.ndim, c.shape),
          what))
    check_output(what, dy, (size_t)n, y_dtype, want, false);
  if (!y_is_b) osp_cuda_free(dy.base);
  osp_cuda_free(da.base), osp_cuda_free(db.base);
  free(a), free(b), free(want);
}

static void test_add(void) {
  const osp_dtype dtypes[][3] = {{OSP_F32, OSP_F32, OSP_F32},
                                 {OSP_BF16, OSP_BF16, OSP_BF16},
                                 {OSP_F32, OSP_BF16, OSP_F32},
                                 {OSP_BF16, OSP_F32, OSP_BF16}};
  const int64_t widths[] = {40, 5120, 37};
  for (size_t d = 0; d < 4; d++) {
    const osp_dtype ta = dtypes[d][0], tb = dtypes[d][1], ty = dtypes[d][2];
    for (size_t w = 0; w < 3; w++) {
      const int64_t C = widths[w], B = 3;
      char shapes[96];
      /* [1, 6, C] + [B, 6, C]: the modulation table plus the time embedding, both ways */
      const int64_t y[] = {B, 6, C}, one[] = {1, 6, C};
      snprintf(shapes, sizeof shapes, "[1,6,%lld]+[3,6,%lld]", (long long)C, (long long)C);
      run_add(shapes, broadcast_case(3, y, one, y), ta, tb, ty, false);
      if (tb == ty) run_add(shapes, broadcast_case(3, y, one, y), ta, tb, ty, true);
      snprintf(shapes, sizeof shapes, "[3,6,%lld]+[1,6,%lld]", (long long)C, (long long)C);
      run_add(shapes, broadcast_case(3, y, y, one), ta, tb, ty, false);
      /* [B, 5, 1] + [B, 5, C]: broadcast along the row itself */
      const int64_t y2[] = {B, 5, C}, column[] = {B, 5, 1};
      snprintf(shapes, sizeof shapes, "[3,5,1]+[3,5,%lld]", (long long)C);
      run_add(shapes, broadcast_case(3, y2, column, y2), ta, tb, ty, false);
      /* [B, C] + row 2 of a [B, 6, C] table (a strided view) */
      const int64_t y3[] = {B, C};
      add_case view = broadcast_case(2, y3, y3, y3);
      view.b_stride[0] = 6 * C, view.b_size = B * 6 * C, view.b_offset = 2 * C;
      snprintf(shapes, sizeof shapes, "[3,%lld]+view of [3,6,%lld]", (long long)C, (long long)C);
      run_add(shapes, view, ta, tb, ty, false);
    }
    const int64_t y8[] = {2, 3, 2, 2, 3, 1, 2, 4}, a8[] = {2, 1, 2, 2, 1, 1, 2, 4},
                  b8[] = {1, 3, 2, 2, 3, 1, 2, 4};
    run_add("8 dimensions", broadcast_case(8, y8, a8, b8), ta, tb, ty, false);
    const int64_t flat[] = {1 << 20};
    run_add("[2^20]+[2^20]", broadcast_case(1, flat, flat, flat), ta, tb, ty, false);
    const int64_t scalar[] = {1};
    run_add("[1]+[1]", broadcast_case(1, scalar, scalar, scalar), ta, tb, ty, false);
  }
}

/* ---- RoPE ------------------------------------------------------------------------------ */

/* Coordinates (t, h, w) inside a 21 × 30 × 52 latent grid, every seventh token padding (t = −1,
 * h and w left random: they must not matter). */
static int32_t *random_positions(size_t tokens) {
  int32_t *p = xmalloc(tokens * 3 * sizeof *p);
  for (size_t i = 0; i < tokens; i++) {
    p[3 * i] = i % 7 == 3 ? -1 : (int32_t)random_below(21);
    p[3 * i + 1] = (int32_t)random_below(30);
    p[3 * i + 2] = (int32_t)random_below(52);
  }
  return p;
}

static void test_rope_tables(void) {
  const int head_dims[] = {128, 64, 40, 38};
  const size_t tokens = 1000;
  for (size_t h = 0; h < sizeof head_dims / sizeof head_dims[0]; h++) {
    const size_t pairs = (size_t)head_dims[h] / 2, n = tokens * pairs;
    int32_t *positions = random_positions(tokens);
    float *want_cos = xmalloc(n * 4), *want_sin = xmalloc(n * 4);
    osp_cpu_rope_tables_at(positions, (int64_t)tokens, head_dims[h], want_cos, want_sin);
    dev_buf dpos = dev_upload_bytes(positions, tokens * 3, sizeof *positions, 0);
    dev_buf dcos = dev_alloc(n, 4, 0), dsin = dev_alloc(n, 4, 0);
    const char *what = label("rope_tables_at tokens %zu head_dim %d", tokens, head_dims[h]);
    if (ran(osp_cuda_rope_tables_at(dpos.data, (int64_t)tokens, head_dims[h], dcos.data, dsin.data),
            what)) {
      check_output(what, dcos, n, OSP_F32, want_cos, false);
      check_output(what, dsin, n, OSP_F32, want_sin, false);
    }
    osp_cuda_free(dpos.base), osp_cuda_free(dcos.base), osp_cuda_free(dsin.base);
    free(positions), free(want_cos), free(want_sin);
  }
}

static void run_rope_apply(int64_t B, int64_t N, int64_t heads, int64_t D, bool per_batch,
                           osp_dtype dtype, size_t offset) {
  const int64_t Bt = per_batch ? B : 1, table_stride = per_batch ? N * D / 2 : 0;
  const size_t n = (size_t)(B * N * heads * D), entries = (size_t)(Bt * N * D / 2);
  int32_t *positions = random_positions((size_t)(Bt * N));
  float *cos_table = xmalloc(entries * 4), *sin_table = xmalloc(entries * 4);
  osp_cpu_rope_tables_at(positions, Bt * N, (int)D, cos_table, sin_table);
  float *x = random_floats(n, 0.0f, 1.0f);
  round_through(dtype, x, n);
  dev_buf dx = dev_upload(x, n, dtype, offset);
  dev_buf dcos = dev_upload(cos_table, entries, OSP_F32, 0), dsin = dev_upload(sin_table, entries, OSP_F32, 0);
  osp_cpu_rope_apply(x, cos_table, sin_table, table_stride, B, N, heads, D);
  const char *what = label("rope_apply B %lld N %lld heads %lld D %lld tables %s %s offset %zu",
                           (long long)B, (long long)N, (long long)heads, (long long)D,
                           per_batch ? "per batch row" : "shared", name(dtype), offset);
  if (ran(osp_cuda_rope_apply(dx.data, dtype, dcos.data, dsin.data, table_stride, B, N, heads, D),
          what))
    check_output(what, dx, n, dtype, x, false);
  osp_cuda_free(dx.base), osp_cuda_free(dcos.base), osp_cuda_free(dsin.base);
  free(positions), free(cos_table), free(sin_table), free(x);
}

static void test_rope_apply(void) {
  const int64_t head_dims[] = {128, 40, 38};
  const osp_dtype dtypes[] = {OSP_F32, OSP_BF16};
  for (size_t h = 0; h < 3; h++)
    for (int per_batch = 0; per_batch < 2; per_batch++)
      for (size_t d = 0; d < 2; d++) run_rope_apply(2, 50, 3, head_dims[h], per_batch, dtypes[d], 0);
  run_rope_apply(2, 50, 3, 128, true, OSP_BF16, 1);
}

/* ---- Video ----------------------------------------------------------------------------- */

static void run_video(bool patchify, osp_cpu_video v, osp_dtype in_dtype, osp_dtype out_dtype) {
  const size_t n = (size_t)(v.batch * v.channels * v.frames * v.height * v.width);
  float *in = random_floats(n, 0.0f, 1.0f), *want = xmalloc(n * 4);
  round_through(in_dtype, in, n);
  if (patchify)
    osp_cpu_patchify(in, v, want);
  else
    osp_cpu_unpatchify(in, v, want);
  const osp_cuda_video cv = {v.batch, v.channels, v.frames, v.height, v.width,
                             {v.patch[0], v.patch[1], v.patch[2]}};
  dev_buf din = dev_upload(in, n, in_dtype, 0), dout = dev_alloc(n, osp_dtype_size(out_dtype), 0);
  const char *what = label("%s [%lld,%lld,%lld,%lld,%lld] patch (%lld,%lld,%lld) %s -> %s",
                           patchify ? "patchify" : "unpatchify", (long long)v.batch,
                           (long long)v.channels, (long long)v.frames, (long long)v.height,
                           (long long)v.width, (long long)v.patch[0], (long long)v.patch[1],
                           (long long)v.patch[2], name(in_dtype), name(out_dtype));
  const osp_status status =
      patchify ? osp_cuda_patchify(din.data, in_dtype, cv, dout.data, out_dtype)
               : osp_cuda_unpatchify(din.data, in_dtype, cv, dout.data, out_dtype);
  if (ran(status, what)) check_output(what, dout, n, out_dtype, want, true);
  osp_cuda_free(din.base), osp_cuda_free(dout.base);
  free(in), free(want);
}

static void test_video(void) {
  const osp_cpu_video videos[] = {{2, 16, 3, 8, 12, {1, 2, 2}}, {1, 3, 4, 6, 4, {2, 3, 2}}};
  const osp_dtype pairs[][2] = {
      {OSP_F32, OSP_F32}, {OSP_BF16, OSP_F32}, {OSP_F32, OSP_BF16}, {OSP_BF16, OSP_BF16}};
  for (size_t v = 0; v < 2; v++)
    for (size_t p = 0; p < 4; p++)
      for (int patchify = 0; patchify < 2; patchify++)
        run_video(patchify, videos[v], pairs[p][0], pairs[p][1]);
}

static void test_timestep_embedding(void) {
  const float t[] = {0.0f, 1.0f, 37.5f, 999.0f};
  const int64_t B = 4, widths[] = {256, 64, 10};
  const osp_dtype dtypes[] = {OSP_F32, OSP_BF16};
  dev_buf dt = dev_upload(t, (size_t)B, OSP_F32, 0);
  for (size_t w = 0; w < 3; w++) {
    const size_t n = (size_t)(B * widths[w]);
    float *want = xmalloc(n * 4);
    osp_cpu_timestep_embedding(t, want, B, widths[w]);
    for (size_t d = 0; d < 2; d++) {
      dev_buf out = dev_alloc(n, osp_dtype_size(dtypes[d]), 0);
      const char *what = label("timestep_embedding B %lld D %lld %s", (long long)B,
                               (long long)widths[w], name(dtypes[d]));
      if (ran(osp_cuda_timestep_embedding(dt.data, out.data, dtypes[d], B, widths[w]), what))
        check_output(what, out, n, dtypes[d], want, false);
      osp_cuda_free(out.base);
    }
    free(want);
  }
  osp_cuda_free(dt.base);
}

int main(void) {
  if (osp_cuda_init() != OSP_OK) {
    printf("test_cuda_kernels: no usable GPU (%s): skipped\n", osp_last_error());
    return 77;
  }
  test_convert();
  test_randn();
  test_norms();
  test_activations();
  test_gather();
  test_modulation();
  test_add();
  test_rope_tables();
  test_rope_apply();
  test_video();
  test_timestep_embedding();
  return test_summary("test_cuda_kernels");
}
