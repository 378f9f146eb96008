/* LoRA adapters of the DiT, as the PyTorch ecosystem writes them (PEFT, diffusers, ComfyUI,
 * kohya/musubi-tuner), merged into its weights: for each adapted Linear W [out, in],
 *
 *     W' = W + scale·(α/r)·B·A,   b' = b + scale·(α_peft/r)·Δb
 *
 * with A [r, in] ("lora_A" / "lora_down"), B [out, r] ("lora_B" / "lora_up") and Δb [out] ("diff_b"
 * / "lora_B.bias"). α follows diffusers' Wan loader (WanLoraLoaderMixin): the module's "alpha"
 * scalar where the file has one, times the adapter's lora_alpha/r where the file's metadata
 * ("lora_adapter_metadata", as diffusers' save_lora_weights writes it) gives one (α_peft/r is
 * that lora_alpha over the module's rank, or over the metadata's r for a Δb alone); α = r (a factor
 * of 1) without either.
 *
 * Names: a tensor is <prefix><module>.<part>, where <prefix> is "transformer." (diffusers),
 * "diffusion_model." (original Wan, ComfyUI), "model.diffusion_model." or nothing, and <module>
 * names a Linear of the DiT in either style of PAPER.md 1.9 ("blocks.0.attn1.to_q" or
 * "blocks.0.self_attn.q"); or "lora_unet_" with the module's dots written as '_' (musubi-tuner,
 * "lora_unet_blocks_0_self_attn_q"). <part> is lora_A.weight, lora_B.weight, lora_down.weight,
 * lora_up.weight, alpha, diff_b or lora_B.bias. As diffusers does, "diff" (whole weight
 * differences), the norms' "diff" / "diff_b" and "dora_scale" are skipped with a warning. Any other
 * name is an error naming the file and the tensor. */
#ifndef OSP_MODEL_LORA_H
#define OSP_MODEL_LORA_H

#include <stdbool.h>

#include "model/dit.h"

typedef struct {
  char path[4096];
  float scale;
} osp_lora_spec;

/* "FILE" or "FILE:SCALE": the scale is what follows the last ':' when it reads as a finite number
 * (default 1); otherwise the whole text is the file. */
osp_status osp_lora_spec_parse(const char *text, osp_lora_spec *spec);

/* Merges each LoRA in turn into a DiT loaded on the CPU (osp_dit_load; its weights are made its
 * own first, osp_dit_own_weights). Every tensor's shape is checked against the DiT before anything
 * changes in that file's pass. `changed` (NULL, or one flag per osp_dit_parameters entry, in its
 * order) gets true for each parameter a LoRA changed. */
osp_status osp_lora_apply(const osp_lora_spec *loras, int count, osp_dit *dit, bool *changed);

#endif
