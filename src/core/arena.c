#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>

#include "core/status.h"

enum { ALIGNMENT = 64 };

size_t osp_arena_align(size_t bytes) { return (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT; }

osp_status osp_arena_init(osp_arena *arena, const char *name, size_t bytes) {
  *arena = (osp_arena){.name = name};
  size_t size = osp_arena_align(bytes ? bytes : 1);
  arena->base = aligned_alloc(ALIGNMENT, size);
  if (!arena->base)
    return osp_fail(OSP_ERR_MEMORY, "arena '%s': cannot allocate %.1f MiB", name,
                    (double)size / (1 << 20));
  arena->size = size;
  return OSP_OK;
}

osp_arena osp_arena_measuring(const char *name) { return (osp_arena){.name = name, .size = SIZE_MAX}; }

void osp_arena_wrap(osp_arena *arena, const char *name, osp_device device, void *base, size_t size,
                    void (*release)(void *base)) {
  *arena = (osp_arena){.name = name, .base = base, .size = size, .device = device, .release = release};
}

void osp_arena_free(osp_arena *arena) {
  if (arena->release)
    arena->release(arena->base);
  else
    free(arena->base);
  *arena = (osp_arena){.name = arena->name};
}

osp_status osp_arena_alloc(osp_arena *arena, size_t bytes, void **out) {
  size_t need = osp_arena_align(bytes);
  if (need > arena->size - arena->used)
    return osp_fail(OSP_ERR_MEMORY, "arena '%s' is full: needed %zu more bytes, %zu of %zu free",
                    arena->name, need, arena->size - arena->used, arena->size);
  *out = arena->base ? arena->base + arena->used : NULL;
  arena->used += need;
  if (arena->used > arena->peak) arena->peak = arena->used;
  return OSP_OK;
}

osp_status osp_arena_tensor(osp_arena *arena, osp_dtype dtype, int ndim, const int64_t *shape,
                            osp_tensor *out) {
  *out = osp_tensor_make(NULL, dtype, arena->device, ndim, shape);
  return osp_arena_alloc(arena, osp_tensor_bytes(out), &out->data);
}

size_t osp_arena_mark(const osp_arena *arena) { return arena->used; }

void osp_arena_reset(osp_arena *arena, size_t mark) { arena->used = mark; }
