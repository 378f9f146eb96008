/* HiF8 in the DiT's blocks (dit_internal.h, PAPER.md 7.4): which tensors, with which smax. The
 * rule and the per-tensor scaling are osp_hif8_quantize's (ops.h). */
#include "core/status.h"
#include "model/dit_internal.h"
#include "ops/ops.h"

osp_status dit_quant_plan(const osp_model_config *c, osp_dtype weight_dtype, osp_arena *a, dit_quant *q, bool *on) {
  *q = (dit_quant){.linears = c->quant == OSP_QUANT_HIF8, .attention = c->quant_attn == OSP_QUANT_HIF8,
                   .forward_max = c->scale_max_forward, .backward_max = c->scale_max_backward};
  *on = q->linears || q->attention;
  if (!q->linears) return OSP_OK;
  if (!c->cross_attn_norm)
    return osp_fail(OSP_ERR_UNSUPPORTED, "quant \"hif8\" needs cross_attn_norm: without it the cross-attention's "
                    "query projection reads the residual stream itself, which HiF8 does not quantize");
  /* The block weights: C×C (attention) and ffn_dim×C (the FFN, both ways). */
  const int64_t largest = (int64_t)c->dim * (c->ffn_dim > c->dim ? c->ffn_dim : c->dim);
  return osp_arena_tensor(a, weight_dtype, 1, &largest, &q->weight);
}

osp_status dit_quant_linear_input(const dit_quant *q, osp_tensor *x) {
  return q && q->linears ? osp_hif8_quantize(x, q->forward_max, x) : OSP_OK;
}

osp_status dit_quant_attention_input(const dit_quant *q, osp_tensor *x) {
  return q && q->attention ? osp_hif8_quantize(x, q->forward_max, x) : OSP_OK;
}

osp_status dit_quant_weight(const dit_quant *q, const osp_linear_params *p, osp_linear_params *used) {
  *used = *p;
  if (!q || !q->linears) return OSP_OK;
  used->weight = osp_tensor_make(q->weight.data, p->weight.dtype, p->weight.device, p->weight.ndim, p->weight.shape);
  return osp_hif8_quantize(&p->weight, q->forward_max, &used->weight);
}

osp_status dit_quant_linear_gradient(const dit_quant *q, osp_tensor *g) {
  return q && q->linears ? osp_hif8_quantize(g, q->backward_max, g) : OSP_OK;
}

osp_status dit_quant_attention_gradient(const dit_quant *q, osp_tensor *g) {
  return q && q->attention ? osp_hif8_quantize(g, q->backward_max, g) : OSP_OK;
}
