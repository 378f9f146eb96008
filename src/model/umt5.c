/* The umT5 encoder's forward (umt5.h): ops only, on the prompt's tokens. */
#include "model/umt5.h"

#include <string.h>

#include "core/status.h"
#include "ops/ops.h"

/* Every activation of one encode of L tokens, planned in one arena on the encoder's device, in
 * its dtype (f32 on the CPU, bf16 on CUDA) but for the ids and the f32 bias. */
typedef struct {
  osp_tensor ids;              /* i32 [L] */
  osp_tensor x, normed, out;   /* [1, L, d_model]: the residual stream, N(x), a sublayer's output */
  osp_tensor q, k, v, heads;   /* [1, L, heads·d_kv]; heads: the attention's output */
  osp_tensor bias;             /* [heads, L, L] */
  osp_tensor gate, up;         /* [1, L, d_ff] */
  osp_tensor scratch;          /* the attention's (no data where the device needs none) */
} activations;

static osp_status plan_activations(osp_arena *arena, const osp_umt5_config *c, osp_device device, int64_t L,
                                   activations *a) {
  const int64_t d = c->d_model, inner = (int64_t)c->num_heads * c->d_kv;
  const int64_t scratch = (int64_t)osp_attention_scratch_bytes(device);
  const osp_dtype D = osp_device_dtype(device);
  OSP_TRY(osp_arena_tensor(arena, OSP_I32, 1, (const int64_t[]){L}, &a->ids));
  osp_tensor *rows[3] = {&a->x, &a->normed, &a->out};
  for (int i = 0; i < 3; i++) OSP_TRY(osp_arena_tensor(arena, D, 3, (const int64_t[]){1, L, d}, rows[i]));
  osp_tensor *attention[4] = {&a->q, &a->k, &a->v, &a->heads};
  for (int i = 0; i < 4; i++) OSP_TRY(osp_arena_tensor(arena, D, 3, (const int64_t[]){1, L, inner}, attention[i]));
  OSP_TRY(osp_arena_tensor(arena, OSP_F32, 3, (const int64_t[]){c->num_heads, L, L}, &a->bias));
  OSP_TRY(osp_arena_tensor(arena, D, 3, (const int64_t[]){1, L, c->d_ff}, &a->gate));
  OSP_TRY(osp_arena_tensor(arena, D, 3, (const int64_t[]){1, L, c->d_ff}, &a->up));
  a->scratch = (osp_tensor){0};
  return scratch ? osp_arena_tensor(arena, OSP_U8, 1, &scratch, &a->scratch) : OSP_OK;
}

size_t osp_umt5_activation_bytes(const osp_umt5_config *config, osp_device device, int64_t count) {
  osp_arena measure = osp_arena_measuring("umT5 activations");
  activations a;
  if (plan_activations(&measure, config, device, count, &a) != OSP_OK) return 0;
  return measure.peak;
}

/* [1, L, heads·d_kv] seen as the attention's [1, L, heads, d_kv]. */
static osp_status per_head(const osp_umt5_config *c, const osp_tensor *t, osp_tensor *view) {
  return osp_tensor_reshape(t, 4, (const int64_t[]){1, t->shape[1], c->num_heads, c->d_kv}, view);
}

/* x += O · softmax(q·kᵀ + bias) · v with q, k, v from N₁(x); no 1/√d_kv. */
static osp_status attention_sublayer(const osp_umt5_config *c, const osp_umt5_layer *l, activations *a) {
  OSP_TRY(osp_rmsnorm(&a->x, &l->attention_norm, c->eps, &a->normed));
  OSP_TRY(osp_linear(&a->normed, &l->q, NULL, &a->q));
  OSP_TRY(osp_linear(&a->normed, &l->k, NULL, &a->k));
  OSP_TRY(osp_linear(&a->normed, &l->v, NULL, &a->v));
  OSP_TRY(osp_relative_position_bias(&l->position_table, c->max_distance, &a->bias));
  osp_tensor q, k, v, heads;
  OSP_TRY(per_head(c, &a->q, &q));
  OSP_TRY(per_head(c, &a->k, &k));
  OSP_TRY(per_head(c, &a->v, &v));
  OSP_TRY(per_head(c, &a->heads, &heads));
  OSP_TRY(osp_attention_biased(&q, &k, &v, NULL, &a->bias, 1.0f, a->scratch.data ? &a->scratch : NULL, &heads));
  OSP_TRY(osp_linear(&a->heads, &l->o, NULL, &a->out));
  return osp_gated_add(&a->x, &a->out, NULL);
}

/* x += W_o · (gelu_tanh(W_wi0 · N₂(x)) ⊙ W_wi1 · N₂(x)). */
static osp_status ffn_sublayer(const osp_umt5_config *c, const osp_umt5_layer *l, activations *a) {
  OSP_TRY(osp_rmsnorm(&a->x, &l->ffn_norm, c->eps, &a->normed));
  OSP_TRY(osp_linear(&a->normed, &l->gate, NULL, &a->gate));
  OSP_TRY(osp_linear(&a->normed, &l->up, NULL, &a->up));
  OSP_TRY(osp_gelu_tanh_mul(&a->gate, &a->up, &a->gate));
  OSP_TRY(osp_linear(&a->gate, &l->down, NULL, &a->out));
  return osp_gated_add(&a->x, &a->out, NULL);
}

static osp_status check_ids(const osp_umt5_config *c, const int32_t *ids, int64_t count) {
  if (count < 1) return osp_fail(OSP_ERR_ARGUMENT, "umT5 encode: expected at least one token id, found none");
  for (int64_t i = 0; i < count; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab_size)
      return osp_fail(OSP_ERR_ARGUMENT,
                      "umT5 encode: token id %d at position %lld is outside the vocabulary [0, %d)",
                      ids[i], (long long)i, c->vocab_size);
  return OSP_OK;
}

/* The context as [1, rows, d_model], with rows ≥ count. */
static osp_status context_rows(const osp_umt5_config *c, int64_t count, const osp_tensor *context,
                               osp_tensor *view) {
  const char *what = "umT5 encode: context";
  OSP_TRY(osp_check_f32_cpu(what, context));
  const int64_t rows = context->ndim >= 2 ? context->shape[context->ndim - 2] : 0;
  if (context->ndim == 2) OSP_TRY(osp_check_shape(what, context, 2, (const int64_t[]){-1, c->d_model}));
  else OSP_TRY(osp_check_shape(what, context, 3, (const int64_t[]){1, -1, c->d_model}));
  if (rows < count)
    return osp_fail(OSP_ERR_SHAPE, "%s: expected at least %lld rows (the tokens), found %lld", what,
                    (long long)count, (long long)rows);
  return osp_tensor_reshape(context, 3, (const int64_t[]){1, rows, c->d_model}, view);
}

/* The ids to the device, the layers, the final norm back into the host context. */
static osp_status forward(const osp_umt5 *m, const int32_t *ids, int64_t count, activations *a,
                          osp_tensor *context) {
  const osp_umt5_config *c = &m->config;
  const osp_tensor host_ids = osp_tensor_make((void *)ids, OSP_I32, OSP_CPU, 1, (const int64_t[]){count});
  OSP_TRY(osp_copy(&host_ids, &a->ids));
  OSP_TRY(osp_gather_rows(&m->embedding, &a->ids, &a->x));
  for (int i = 0; i < c->num_layers; i++) {
    OSP_TRY(attention_sublayer(c, &m->layers[i], a));
    OSP_TRY(ffn_sublayer(c, &m->layers[i], a));
  }
  const int64_t d = c->d_model, rows = context->shape[1];
  osp_tensor tokens = osp_tensor_make(context->data, OSP_F32, OSP_CPU, 3, (const int64_t[]){1, count, d});
  OSP_TRY(osp_rmsnorm(&a->x, &m->final_norm, c->eps, &a->normed));
  OSP_TRY(osp_copy(&a->normed, &tokens));
  if (rows == count) return OSP_OK;
  osp_tensor padding = osp_tensor_make((float *)context->data + count * d, OSP_F32, OSP_CPU, 3,
                                       (const int64_t[]){1, rows - count, d});
  return osp_zero(&padding);
}

osp_status osp_umt5_encode(const osp_umt5 *m, const int32_t *ids, int64_t count, osp_tensor *context) {
  osp_tensor rows;
  OSP_TRY(check_ids(&m->config, ids, count));
  OSP_TRY(context_rows(&m->config, count, context, &rows));
  osp_arena arena;
  OSP_TRY(osp_device_arena(&arena, "umT5 activations", m->device,
                           osp_umt5_activation_bytes(&m->config, m->device, count)));
  activations a;
  osp_status status = plan_activations(&arena, &m->config, m->device, count, &a);
  if (status == OSP_OK) status = forward(m, ids, count, &a, &rows);
  osp_arena_free(&arena);
  return status;
}
