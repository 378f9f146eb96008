/* Training the DiT: a forward that records what its backward needs (a tape), and the backward,
 * which gives the gradient of every parameter and of the latents from the gradient of the
 * velocity. Shapes are fixed when the tape is made, and every buffer is planned then: a step
 * allocates nothing. */
#ifndef OSP_MODEL_DIT_TRAIN_H
#define OSP_MODEL_DIT_TRAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "model/dit.h"

typedef struct osp_dit_tape osp_dit_tape;

typedef struct {
  int64_t batch, frames, height, width; /* of the latents [B, in, F, H, W] */
  int64_t text_rows;                    /* L of the context [B, L, text_dim] */
  /* Activation checkpointing: keep only each block's input, and run the block's forward again
   * in the backward (one more forward of the blocks, a block's worth of activations instead of
   * all of them). */
  bool checkpoint;
  /* Sequence parallelism (parallel/): the ranks of `sequence` share the tokens (NULL or one rank:
   * all of them here), split for Skiparse blocks as `mode` says. The backward's parameter
   * gradients are summed over the ranks, so every rank ends with the whole-sequence gradients. */
  osp_comm *sequence;
  osp_sp_mode mode;
} osp_dit_tape_options;

/* A tape for `dit` (on its device) and these shapes. */
osp_status osp_dit_tape_create(const osp_dit *dit, const osp_dit_tape_options *options, osp_dit_tape **tape);
/* The bytes a tape for these options would take, without allocating it (the DiT's weights need
 * not be there: only its config and device are read). */
osp_status osp_dit_tape_measure(const osp_dit *dit, const osp_dit_tape_options *options, size_t *bytes);
/* Bytes of device memory the tape holds (activations, gradients of activations, scratch). */
size_t osp_dit_tape_bytes(const osp_dit_tape *tape);
void osp_dit_tape_free(osp_dit_tape *tape);

/* osp_dit_forward, recording onto the tape (inputs of the tape's shapes). The velocity is the
 * same as osp_dit_forward's to rounding (inference shares buffers and fuses steps that training
 * keeps apart). */
osp_status osp_dit_forward_train(const osp_dit *dit, osp_dit_tape *tape, const osp_tensor *latents,
                                 const osp_tensor *timestep, const osp_tensor *context,
                                 osp_tensor *velocity);

/* The backward of the last osp_dit_forward_train on this tape: given dvelocity = ∂loss/∂velocity
 * (f32, velocity's shape, any device), ACCUMULATES ∂loss/∂θ into `grads` (osp_dit_init_zeros of
 * the same model, on its device), as autograd accumulates .grad, and WRITES ∂loss/∂latents into
 * dlatents (f32, latents' shape, any device; NULL: not wanted). No gradient for the timestep or the
 * context. */
osp_status osp_dit_backward(const osp_dit *dit, osp_dit_tape *tape, const osp_tensor *dvelocity,
                            osp_dit *grads, osp_tensor *dlatents);

#endif
