/* The flow-matching objective as Wan2.1 and OSP-Next train with it (PAPER.md §4 and §9):
 *
 *   σ      ~ uniform on (0, 1), or logit-normal: σ = sigmoid(m + d·z), z ~ N(0, 1)
 *   σ′     = s·σ / (1 + (s − 1)·σ)     the shift s: none (s = 1), a fixed s, or OSP-Next's by
 *            resolution: s = exp(μ), μ = 0.5 + 0.65·(L − 256)/3840, L = h_lat·w_lat/4 (the tokens
 *            of one latent frame after the 2×2 patch; 720P: 90×160 → L = 3600, s ≈ 2.90)
 *   t      = 1000·σ′                   the model's timestep
 *   x_t    = (1 − σ′)·x0 + σ′·ε,  ε ~ N(0, 1)
 *   target = ε − x0                    the velocity v the DiT is trained to predict
 *   L      = mean((v − target)²),  dL/dv = 2·(v − target)/numel
 *
 * Randomness: Philox4x32-10 (core/rng.h), its key the training seed, its 128-bit counter
 * {w0, w1, w2, w3} laid out so that a draw depends only on (seed, step, sample) and a resumed run
 * draws what the uninterrupted one did:
 *   σ of sample g at step t       one block, counter {g low, g high, t, 0x5349474D "SIGM"}
 *   ε of sample g at step t       osp_randn(seed, stream t, offset g·2^40 + i) for its element i:
 *                                 counters {block low, block high, t, 0}
 *   the dataset's shuffle (dataset.h) and any later per-sample draw of the trainer use other tags
 *   in w3; osp_randn's w3 is always 0, so a tagged draw never meets a noise draw. Noise streams
 *   are [0, 2^31); streams from 2^31 on are left to other osp_randn users of the training seed.
 * g is the sample's global index within the step: replica·B + b under data parallelism, so the
 * draws do not depend on how a step's samples are split over ranks. Limits: t in [0, 2^31),
 * g < 2^24, a sample of fewer than 2^40 elements.
 *
 * Tensors are contiguous float32 CPU tensors (the CUDA path is not written yet: CUDA tensors are
 * refused with OSP_ERR_UNSUPPORTED). Each error names the function, the operand, what was expected
 * and what was found. */
#ifndef OSP_PIPELINE_FLOW_MATCHING_H
#define OSP_PIPELINE_FLOW_MATCHING_H

#include <stdint.h>

#include "core/tensor.h"

typedef enum { OSP_FLOW_UNIFORM, OSP_FLOW_LOGIT_NORMAL } osp_flow_distribution;
typedef enum {
  OSP_FLOW_SHIFT_NONE,
  OSP_FLOW_SHIFT_FIXED,
  OSP_FLOW_SHIFT_RESOLUTION
} osp_flow_shift_kind;

typedef struct {
  osp_flow_distribution distribution;
  double logit_mean, logit_std; /* logit-normal's m and d: finite, d ≥ 0 (0: σ = sigmoid(m)) */
  osp_flow_shift_kind shift_kind;
  double shift; /* fixed: s, finite and > 0; unused by the other kinds */
} osp_flow_config;

/* OSP-Next's sampling: logit-normal with m = 0, d = 1, and the resolution shift. */
osp_flow_config osp_flow_config_osp_next(void);

/* The config's parameters make sense (each error names the parameter, expected and found). */
osp_status osp_flow_config_check(const osp_flow_config *config);

/* "uniform" | "logit_normal" and "none" | "fixed" | "resolution" ↔ their kinds; another name is an
 * error naming the known ones. */
osp_status osp_flow_distribution_parse(const char *name, osp_flow_distribution *distribution);
const char *osp_flow_distribution_name(osp_flow_distribution distribution);
osp_status osp_flow_shift_kind_parse(const char *name, osp_flow_shift_kind *kind);
const char *osp_flow_shift_kind_name(osp_flow_shift_kind kind);

/* *shift = exp(0.5 + 0.65·(L − 256)/3840), L = latent_height·latent_width/4 (not rounded); both
 * sizes ≥ 1. 480P (60×104): L = 1560, s ≈ 2.06; 720P (90×160): L = 3600, s ≈ 2.90. */
osp_status osp_flow_resolution_shift(int64_t latent_height, int64_t latent_width, double *shift);

/* *shift = the config's s for latents of that size: 1 (none), config->shift (fixed), or the
 * resolution shift (the sizes are checked only for it). Checks the config first. */
osp_status osp_flow_shift_of(const osp_flow_config *config, int64_t latent_height,
                             int64_t latent_width, double *shift);

/* σ′ = s·σ / (1 + (s − 1)·σ), in double. */
double osp_flow_shift_sigma(double sigma, double shift);

/* shifted [B] ← σ′_b = s·σ_b / (1 + (s − 1)·σ_b), computed in double from sigma [B] (each in
 * [0, 1]) and rounded once, and timestep [B] ← 1000·σ′_b in float32 (as torch's sigma * 1000;
 * NULL: not wanted). shift: finite, > 0. shifted may be sigma itself. */
osp_status osp_flow_shift_sigmas(const osp_tensor *sigma, double shift, osp_tensor *shifted,
                                 osp_tensor *timestep);

/* What a step's draws are keyed by (see the layout above). */
typedef struct {
  uint64_t seed;        /* the training seed: Philox's key */
  int64_t step;         /* the trainer's step number, the same after a resume: [0, 2^31) */
  int64_t first_sample; /* g of the batch's sample 0 (replica·B): ≥ 0, g + B ≤ 2^24 */
} osp_flow_key;

/* σ′_b of samples g = first_sample + b, b < B, shifted as the config says for latents of
 * latent_height × latent_width, stored as osp_flow_shift_sigmas stores them: sigma [B] ← σ′_b
 * (σ drawn and shifted in double, rounded once), timestep [B] ← 1000·σ′_b (NULL: not wanted).
 * The uniform σ is (k + ½)·2^-52, k the 52 bits w0·2^20 + (w1 >> 12): exact in double, in
 * [2^-53, 1 − 2^-53], never 0 or 1.
 * The logit-normal z is Box-Muller's sqrt(−2 ln u1)·cos(2π·u2), u1 from (w0, w1) and u2 from
 * (w2, w3) as above, in double. */
osp_status osp_flow_draw_sigmas(const osp_flow_config *config, const osp_flow_key *key,
                                int64_t latent_height, int64_t latent_width, osp_tensor *sigma,
                                osp_tensor *timestep);

/* noise [B, ...] ← ε of samples g = first_sample + b: osp_randn(seed, step, g·2^40, ...). */
osp_status osp_flow_draw_noise(const osp_flow_key *key, osp_tensor *noise);

/* Per sample b, with s = σ′_b = sigma[b], in float32 as torch computes (1 − s)·x0 + s·ε:
 *   x_t = (1 − s)·x0 + s·ε,   target = ε − x0
 * x0, noise, x_t, target: one shape [B, ...]; sigma [B]. An output may be an input itself (in
 * place); otherwise no two operands share memory. */
osp_status osp_flow_noisy_input(const osp_tensor *x0, const osp_tensor *noise,
                                const osp_tensor *sigma, osp_tensor *x_t, osp_tensor *target);

/* *loss = mean((v − target)²): the squares of the float32 differences summed in double in an
 * order fixed by numel alone (the same bits for any number of threads), divided by numel.
 * grad_v ← dL/dv = (float)(2/numel)·(v − target), written, not accumulated (torch's
 * mse_loss backward with grad_output 1). grad_v has v's shape; it may be v or target itself. */
osp_status osp_flow_loss(const osp_tensor *v, const osp_tensor *target, double *loss,
                         osp_tensor *grad_v);

#endif
