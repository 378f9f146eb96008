/* Arenas: one block of memory sized up front, handed out by bumping a pointer.
 * Running out is an error that says how much was needed and how much there was. */
#ifndef OSP_CORE_ARENA_H
#define OSP_CORE_ARENA_H

#include <stddef.h>

#include "core/tensor.h"

typedef struct {
  const char *name; /* for messages: "activations", "weights", ... */
  unsigned char *base;
  size_t size, used, peak;
  osp_device device;            /* where base lives; tensors from the arena say so */
  void (*release)(void *base);  /* frees base; NULL: free() */
} osp_arena;

/* Rounds a byte count up to the arena's alignment (64 bytes: a cache line, an AVX-512 vector). */
size_t osp_arena_align(size_t bytes);

osp_status osp_arena_init(osp_arena *arena, const char *name, size_t bytes);
/* An arena over memory someone else allocated (device memory, say): osp_arena_free hands base to
 * `release`. */
void osp_arena_wrap(osp_arena *arena, const char *name, osp_device device, void *base, size_t size,
                    void (*release)(void *base));
/* An arena that hands out no memory (every pointer is NULL) and only counts: run an allocation
 * sequence against it first, then size the real arena to its `peak`. */
osp_arena osp_arena_measuring(const char *name);
void osp_arena_free(osp_arena *arena);
osp_status osp_arena_alloc(osp_arena *arena, size_t bytes, void **out);
/* A contiguous, uninitialised tensor from the arena. */
osp_status osp_arena_tensor(osp_arena *arena, osp_dtype dtype, int ndim, const int64_t *shape,
                            osp_tensor *out);
/* Everything allocated after a mark is released by resetting to it. */
size_t osp_arena_mark(const osp_arena *arena);
void osp_arena_reset(osp_arena *arena, size_t mark);

#endif
