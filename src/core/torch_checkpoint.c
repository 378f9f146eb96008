/* PyTorch checkpoints (torch_checkpoint.h). The archive holds <prefix>/data.pkl, a pickle
 * (protocol 2 in torch.save) of the state dict, and <prefix>/data/<key>, the bytes of each storage.
 * A tensor in the pickle is
 *   torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)
 * with storage a persistent id ('storage', torch.<Type>Storage, key, location, numel). The machine
 * below runs the opcodes torch.save emits, over objects in a pool referred to by index. */
#include "core/torch_checkpoint.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"

typedef enum { NONE, BOOL, INT, FLOAT, STRING, TUPLE, LIST, DICT, GLOBAL, STORAGE, TENSOR, MARK } kind;

typedef struct {
  kind kind;
  int64_t integer;
  char *text;          /* string; global "module.name" */
  int *items, count, capacity; /* tuple, list; dict: key, value, key, value, ... */
  osp_st_dtype dtype;  /* storage, tensor */
  const unsigned char *data;
  int64_t numel;       /* storage: elements */
  int storage;         /* tensor: its storage object */
  int64_t offset;
  int ndim;
  int64_t shape[OSP_MAX_DIMS], stride[OSP_MAX_DIMS];
} object;

typedef struct {
  const char *path;
  const osp_zip *zip;
  const char *prefix; /* "archive/" */
  object *pool;
  int pool_count, pool_capacity;
  int *stack, depth, stack_capacity;
  int *memo, memo_capacity;
} machine;

static const struct {
  const char *global;
  osp_st_dtype dtype;
} storage_types[] = {
    {"torch.FloatStorage", OSP_ST_F32}, {"torch.DoubleStorage", OSP_ST_F64}, {"torch.HalfStorage", OSP_ST_F16},
    {"torch.BFloat16Storage", OSP_ST_BF16}, {"torch.LongStorage", OSP_ST_I64}, {"torch.IntStorage", OSP_ST_I32},
    {"torch.ShortStorage", OSP_ST_I16}, {"torch.CharStorage", OSP_ST_I8}, {"torch.ByteStorage", OSP_ST_U8},
    {"torch.BoolStorage", OSP_ST_BOOL},
};
static const char ORDERED_DICT[] = "collections.OrderedDict", REBUILD_TENSOR[] = "torch._utils._rebuild_tensor_v2",
                  REBUILD_PARAMETER[] = "torch._utils._rebuild_parameter";

/* ---- the pool and the stack ---- */

static bool grow(void **items, int *capacity, int needed, size_t size) {
  if (needed <= *capacity) return true;
  int c = *capacity ? *capacity : 64;
  while (c < needed) c *= 2;
  void *grown = realloc(*items, (size_t)c * size);
  if (!grown) return false;
  memset((char *)grown + (size_t)*capacity * size, 0, (size_t)(c - *capacity) * size);
  *items = grown;
  *capacity = c;
  return true;
}

static osp_status new_object(machine *m, kind k, int *index) {
  if (!grow((void **)&m->pool, &m->pool_capacity, m->pool_count + 1, sizeof *m->pool))
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", m->path);
  m->pool[m->pool_count] = (object){.kind = k};
  *index = m->pool_count++;
  return OSP_OK;
}

static osp_status push(machine *m, int index) {
  if (!grow((void **)&m->stack, &m->stack_capacity, m->depth + 1, sizeof *m->stack))
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", m->path);
  m->stack[m->depth++] = index;
  return OSP_OK;
}

static osp_status push_new(machine *m, kind k, int64_t integer) {
  int index = 0;
  OSP_TRY(new_object(m, k, &index));
  m->pool[index].integer = integer;
  return push(m, index);
}

static osp_status pop(machine *m, int *index) {
  if (m->depth == 0 || m->pool[m->stack[m->depth - 1]].kind == MARK)
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: the pickle pops an empty stack", m->path);
  *index = m->stack[--m->depth];
  return OSP_OK;
}

static osp_status append_item(machine *m, int container, int item) {
  object *o = &m->pool[container];
  if (!grow((void **)&o->items, &o->capacity, o->count + 1, sizeof *o->items))
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", m->path);
  o->items[o->count++] = item;
  return OSP_OK;
}

/* Pops everything above the topmost mark (and the mark) into a new object of kind k. */
static osp_status pop_to_mark(machine *m, kind k, int *index) {
  int mark = m->depth - 1;
  while (mark >= 0 && m->pool[m->stack[mark]].kind != MARK) mark--;
  if (mark < 0) return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: no mark on the stack", m->path);
  OSP_TRY(new_object(m, k, index));
  for (int i = mark + 1; i < m->depth; i++) OSP_TRY(append_item(m, *index, m->stack[i]));
  m->depth = mark;
  return OSP_OK;
}

/* The last n stack items into a new tuple. */
static osp_status pop_tuple(machine *m, int n, int *index) {
  if (m->depth < n) return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: a tuple of %d from a shorter stack", m->path, n);
  OSP_TRY(new_object(m, TUPLE, index));
  for (int i = m->depth - n; i < m->depth; i++) OSP_TRY(append_item(m, *index, m->stack[i]));
  m->depth -= n;
  return OSP_OK;
}

static osp_status memo_put(machine *m, int64_t key) {
  if (key < 0 || key > (1 << 26) || m->depth == 0) return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: memo key %lld", m->path, (long long)key);
  if (!grow((void **)&m->memo, &m->memo_capacity, (int)key + 1, sizeof *m->memo))
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", m->path);
  m->memo[key] = m->stack[m->depth - 1] + 1; /* 0: unset */
  return OSP_OK;
}

static osp_status memo_get(machine *m, int64_t key) {
  if (key < 0 || key >= m->memo_capacity || !m->memo[key])
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: memo key %lld was never set", m->path, (long long)key);
  return push(m, m->memo[key] - 1);
}

/* ---- what REDUCE and BINPERSID build ---- */

static osp_status check_global(const machine *m, const char *name) {
  if (!strcmp(name, ORDERED_DICT) || !strcmp(name, REBUILD_TENSOR) || !strcmp(name, REBUILD_PARAMETER)) return OSP_OK;
  for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++)
    if (!strcmp(name, storage_types[i].global)) return OSP_OK;
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: data.pkl names the global '%s': a state dict needs only tensors, dicts and "
                  "numbers, so OSP refuses it (and never runs code from a checkpoint)", m->path, name);
}

static const object *item(const machine *m, const object *o, int i) { return &m->pool[o->items[i]]; }

/* ('storage', torch.<Type>Storage, key, location, numel) → the storage's bytes in the archive. */
static osp_status persistent_load(machine *m, int id, int *index) {
  const object *pid = &m->pool[id];
  if (pid->kind != TUPLE || pid->count < 5 || item(m, pid, 0)->kind != STRING || strcmp(item(m, pid, 0)->text, "storage") ||
      item(m, pid, 1)->kind != GLOBAL || item(m, pid, 2)->kind != STRING || item(m, pid, 4)->kind != INT)
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: a persistent id that is not a storage", m->path);
  osp_st_dtype dtype = OSP_ST_F32;
  bool known = false;
  for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0] && !known; i++)
    if (!strcmp(item(m, pid, 1)->text, storage_types[i].global)) dtype = storage_types[i].dtype, known = true;
  if (!known) return osp_fail(OSP_ERR_UNSUPPORTED, "%s: storage type %s", m->path, item(m, pid, 1)->text);
  char name[512];
  snprintf(name, sizeof name, "%sdata/%s", m->prefix, item(m, pid, 2)->text);
  const osp_zip_entry *e = osp_zip_find(m->zip, name);
  const int64_t numel = item(m, pid, 4)->integer;
  if (!e) return osp_fail(OSP_ERR_MISSING, "%s: storage '%s' is not in the archive", m->path, name);
  if (numel < 0 || (uint64_t)numel > e->size / osp_st_dtype_size(dtype))
    return osp_fail(OSP_ERR_FORMAT, "%s: storage '%s' holds %llu bytes, fewer than its %lld elements need", m->path,
                    name, (unsigned long long)e->size, (long long)numel);
  OSP_TRY(new_object(m, STORAGE, index));
  m->pool[*index].dtype = dtype;
  m->pool[*index].data = e->data;
  m->pool[*index].numel = numel;
  return OSP_OK;
}

/* A tuple of integers into dims (at most OSP_MAX_DIMS). */
static osp_status read_dims(const machine *m, const object *t, int64_t *dims, int *ndim) {
  if (t->kind != TUPLE || t->count > OSP_MAX_DIMS)
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: a tensor's size or stride is not a tuple of at most %d", m->path,
                    OSP_MAX_DIMS);
  for (int i = 0; i < t->count; i++) {
    if (item(m, t, i)->kind != INT || item(m, t, i)->integer < 0)
      return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: a tensor size or stride that is not a count", m->path);
    dims[i] = item(m, t, i)->integer;
  }
  *ndim = t->count;
  return OSP_OK;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, ...): every element inside the storage. */
static osp_status rebuild_tensor(machine *m, const object *args, int *index) {
  if (args->count < 4 || item(m, args, 0)->kind != STORAGE || item(m, args, 1)->kind != INT)
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: _rebuild_tensor_v2 with unexpected arguments", m->path);
  object t = {.kind = TENSOR, .storage = args->items[0], .offset = item(m, args, 1)->integer};
  int stride_ndim;
  OSP_TRY(read_dims(m, item(m, args, 2), t.shape, &t.ndim));
  OSP_TRY(read_dims(m, item(m, args, 3), t.stride, &stride_ndim));
  if (stride_ndim != t.ndim) return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: a tensor's size and stride differ in length", m->path);
  const object *storage = item(m, args, 0);
  int64_t last = t.offset;
  bool empty = false;
  for (int d = 0; d < t.ndim; d++) {
    empty |= t.shape[d] == 0;
    last += (t.shape[d] - 1) * t.stride[d];
  }
  if (!empty && (t.offset < 0 || last >= storage->numel))
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: a tensor reaches element %lld of a storage of %lld", m->path,
                    (long long)last, (long long)storage->numel);
  t.dtype = storage->dtype;
  OSP_TRY(new_object(m, TENSOR, index));
  m->pool[*index] = t;
  return OSP_OK;
}

static osp_status reduce(machine *m) {
  int args_index = 0, callable_index = 0, result = 0;
  OSP_TRY(pop(m, &args_index));
  OSP_TRY(pop(m, &callable_index));
  const object *callable = &m->pool[callable_index], *args = &m->pool[args_index];
  if (callable->kind != GLOBAL || args->kind != TUPLE)
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: REDUCE of something that is not a known global", m->path);
  if (!strcmp(callable->text, ORDERED_DICT)) {
    OSP_TRY(new_object(m, DICT, &result));
  } else if (!strcmp(callable->text, REBUILD_TENSOR)) {
    OSP_TRY(rebuild_tensor(m, args, &result));
  } else if (!strcmp(callable->text, REBUILD_PARAMETER) && args->count >= 1 && item(m, args, 0)->kind == TENSOR) {
    result = args->items[0];
  } else {
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: data.pkl calls %s in a way a state dict does not", m->path, callable->text);
  }
  return push(m, result);
}

/* SETITEM(S): key, value pairs into the dict below them. */
static osp_status set_items(machine *m, bool many) {
  int pairs = 0;
  if (many) OSP_TRY(pop_to_mark(m, TUPLE, &pairs));
  else OSP_TRY(pop_tuple(m, 2, &pairs));
  int dict = 0;
  OSP_TRY(pop(m, &dict));
  if (m->pool[dict].kind != DICT || m->pool[pairs].count % 2)
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: SETITEMS on something that is not a dict", m->path);
  for (int i = 0; i < m->pool[pairs].count; i++) OSP_TRY(append_item(m, dict, m->pool[pairs].items[i]));
  return push(m, dict);
}

static osp_status appends(machine *m, bool many) {
  int values = 0;
  if (many) OSP_TRY(pop_to_mark(m, TUPLE, &values));
  else OSP_TRY(pop_tuple(m, 1, &values));
  int list = 0;
  OSP_TRY(pop(m, &list));
  if (m->pool[list].kind != LIST) return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: APPEND to something that is not a list", m->path);
  for (int i = 0; i < m->pool[values].count; i++) OSP_TRY(append_item(m, list, m->pool[values].items[i]));
  return push(m, list);
}

/* ---- the opcodes ---- */

typedef struct {
  const unsigned char *p, *end;
} reader;

static osp_status need(const machine *m, const reader *r, uint64_t bytes) {
  if ((uint64_t)(r->end - r->p) < bytes) return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl ends inside an opcode", m->path);
  return OSP_OK;
}

static uint64_t take(reader *r, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | r->p[i];
  r->p += bytes;
  return v;
}

static osp_status push_string(machine *m, reader *r, uint64_t length, kind k) {
  OSP_TRY(need(m, r, length));
  int index = 0;
  OSP_TRY(new_object(m, k, &index));
  if (!(m->pool[index].text = strndup((const char *)r->p, length))) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  r->p += length;
  return push(m, index);
}

/* GLOBAL: "module\nname\n". */
static osp_status global(machine *m, reader *r) {
  const unsigned char *a = memchr(r->p, '\n', (size_t)(r->end - r->p));
  const unsigned char *b = a ? memchr(a + 1, '\n', (size_t)(r->end - a - 1)) : NULL;
  if (!b) return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: a GLOBAL without its names", m->path);
  char name[256];
  snprintf(name, sizeof name, "%.*s.%.*s", (int)(a - r->p), (const char *)r->p, (int)(b - a - 1), (const char *)a + 1);
  r->p = b + 1;
  OSP_TRY(check_global(m, name));
  int index = 0;
  OSP_TRY(new_object(m, GLOBAL, &index));
  if (!(m->pool[index].text = strdup(name))) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  return push(m, index);
}

static osp_status stack_global(machine *m) {
  int name = 0, module = 0;
  OSP_TRY(pop(m, &name));
  OSP_TRY(pop(m, &module));
  if (m->pool[name].kind != STRING || m->pool[module].kind != STRING)
    return osp_fail(OSP_ERR_FORMAT, "%s: data.pkl: STACK_GLOBAL of non-strings", m->path);
  char full[256];
  snprintf(full, sizeof full, "%s.%s", m->pool[module].text, m->pool[name].text);
  OSP_TRY(check_global(m, full));
  int index = 0;
  OSP_TRY(new_object(m, GLOBAL, &index));
  if (!(m->pool[index].text = strdup(full))) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  return push(m, index);
}

static osp_status binpersid(machine *m) {
  int id = 0, storage = 0;
  OSP_TRY(pop(m, &id));
  OSP_TRY(persistent_load(m, id, &storage));
  return push(m, storage);
}

/* BUILD: an empty state (None, {}, ()) does nothing; a dict's attributes (a module's state_dict()
 * carries `_metadata`, its modules' versions) are set aside; any other state is refused. */
static osp_status build(machine *m) {
  int state = 0;
  OSP_TRY(pop(m, &state));
  const object *s = &m->pool[state];
  if (s->kind == NONE || ((s->kind == DICT || s->kind == TUPLE) && s->count == 0)) return OSP_OK;
  if (s->kind == DICT && m->depth > 0 && m->pool[m->stack[m->depth - 1]].kind == DICT) return OSP_OK;
  return osp_fail(OSP_ERR_UNSUPPORTED, "%s: data.pkl sets an object's state (BUILD): not a plain state dict", m->path);
}

static osp_status step(machine *m, reader *r, bool *stop) {
  OSP_TRY(need(m, r, 1));
  const unsigned char op = (unsigned char)take(r, 1);
  int index = 0;
  switch (op) {
    case 0x80: OSP_TRY(need(m, r, 1)); take(r, 1); return OSP_OK;                 /* PROTO */
    case 0x95: OSP_TRY(need(m, r, 8)); take(r, 8); return OSP_OK;                 /* FRAME */
    case '.': *stop = true; return OSP_OK;                                        /* STOP */
    case '(': return push_new(m, MARK, 0);                                        /* MARK */
    case 'N': return push_new(m, NONE, 0);
    case 0x88: return push_new(m, BOOL, 1);                                       /* NEWTRUE */
    case 0x89: return push_new(m, BOOL, 0);                                       /* NEWFALSE */
    case 'K': OSP_TRY(need(m, r, 1)); return push_new(m, INT, (int64_t)take(r, 1)); /* BININT1 */
    case 'M': OSP_TRY(need(m, r, 2)); return push_new(m, INT, (int64_t)take(r, 2)); /* BININT2 */
    case 'J': OSP_TRY(need(m, r, 4)); return push_new(m, INT, (int32_t)take(r, 4)); /* BININT */
    case 0x8a: {                                                                  /* LONG1 */
      OSP_TRY(need(m, r, 1));
      const int n = (int)take(r, 1);
      if (n > 8) return osp_fail(OSP_ERR_UNSUPPORTED, "%s: data.pkl: an integer of %d bytes", m->path, n);
      OSP_TRY(need(m, r, (uint64_t)n));
      uint64_t v = n ? take(r, n) : 0;
      if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ull << (8 * n); /* sign-extend */
      return push_new(m, INT, (int64_t)v);
    }
    case 'G': OSP_TRY(need(m, r, 8)); r->p += 8; return push_new(m, FLOAT, 0);  /* BINFLOAT (value unused) */
    case 'X': OSP_TRY(need(m, r, 4)); return push_string(m, r, take(r, 4), STRING); /* BINUNICODE */
    case 0x8c: OSP_TRY(need(m, r, 1)); return push_string(m, r, take(r, 1), STRING); /* SHORT_BINUNICODE */
    case 0x8d: OSP_TRY(need(m, r, 8)); return push_string(m, r, take(r, 8), STRING); /* BINUNICODE8 */
    case 'c': return global(m, r);
    case 0x93: return stack_global(m);
    case ')': OSP_TRY(new_object(m, TUPLE, &index)); return push(m, index);      /* EMPTY_TUPLE */
    case 't': OSP_TRY(pop_to_mark(m, TUPLE, &index)); return push(m, index);     /* TUPLE */
    case 0x85: case 0x86: case 0x87:                                            /* TUPLE1..3 */
      OSP_TRY(pop_tuple(m, op - 0x84, &index));
      return push(m, index);
    case '}': OSP_TRY(new_object(m, DICT, &index)); return push(m, index);       /* EMPTY_DICT */
    case ']': OSP_TRY(new_object(m, LIST, &index)); return push(m, index);       /* EMPTY_LIST */
    case 's': return set_items(m, false);
    case 'u': return set_items(m, true);
    case 'a': return appends(m, false);
    case 'e': return appends(m, true);
    case 'q': OSP_TRY(need(m, r, 1)); return memo_put(m, (int64_t)take(r, 1));   /* BINPUT */
    case 'r': OSP_TRY(need(m, r, 4)); return memo_put(m, (int64_t)take(r, 4));   /* LONG_BINPUT */
    case 0x94: {                                                                  /* MEMOIZE */
      int64_t next = 0;
      while (next < m->memo_capacity && m->memo[next]) next++;
      return memo_put(m, next);
    }
    case 'h': OSP_TRY(need(m, r, 1)); return memo_get(m, (int64_t)take(r, 1));   /* BINGET */
    case 'j': OSP_TRY(need(m, r, 4)); return memo_get(m, (int64_t)take(r, 4));   /* LONG_BINGET */
    case 'Q': return binpersid(m);
    case 'R': return reduce(m);
    case 'b': return build(m);
    default:
      return osp_fail(OSP_ERR_UNSUPPORTED, "%s: data.pkl: pickle opcode 0x%02X, which a state dict from torch.save "
                      "does not use", m->path, op);
  }
}

static osp_status run(machine *m, const osp_zip_entry *pickle, int *result) {
  reader r = {pickle->data, pickle->data + pickle->size};
  bool stop = false;
  while (!stop) OSP_TRY(step(m, &r, &stop));
  return pop(m, result);
}

/* ---- the state dict out of the result ---- */

static bool contiguous(const object *t) {
  int64_t expected = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->shape[d] != 1 && t->stride[d] != expected) return false;
    expected *= t->shape[d];
  }
  return true;
}

/* Copies a strided tensor element by element into a contiguous buffer. */
static void gather(const object *t, const unsigned char *base, size_t element, unsigned char *out) {
  int64_t index[OSP_MAX_DIMS] = {0}, numel = 1;
  for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
  for (int64_t i = 0; i < numel; i++) {
    int64_t offset = t->offset;
    for (int d = 0; d < t->ndim; d++) offset += index[d] * t->stride[d];
    memcpy(out + (size_t)i * element, base + (size_t)offset * element, element);
    for (int d = t->ndim - 1; d >= 0 && ++index[d] == t->shape[d]; d--) index[d] = 0;
  }
}

static osp_status add_tensor(const machine *m, const char *name, const object *t, osp_torch_checkpoint *c) {
  osp_torch_tensor *out = &c->tensors[c->count];
  const object *storage = &m->pool[t->storage];
  const size_t element = osp_st_dtype_size(t->dtype);
  *out = (osp_torch_tensor){.dtype = t->dtype, .ndim = t->ndim};
  memcpy(out->shape, t->shape, sizeof t->shape);
  if (!(out->name = strdup(name))) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  c->count++;
  if (contiguous(t)) {
    out->data = storage->data + (size_t)t->offset * element;
    return OSP_OK;
  }
  int64_t numel = 1;
  for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
  if (!(out->owned = malloc((size_t)numel * element + 1)))
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory for tensor '%s'", m->path, name);
  gather(t, storage->data, element, out->owned);
  out->data = out->owned;
  return OSP_OK;
}

/* The tensors of a dict, nested dicts under "<key>.", other values (numbers, strings) skipped. */
static osp_status flatten(const machine *m, const object *dict, const char *prefix, osp_torch_checkpoint *c) {
  for (int i = 0; i + 1 < dict->count; i += 2) {
    const object *key = item(m, dict, i), *value = item(m, dict, i + 1);
    char name[1024];
    if (key->kind == STRING) snprintf(name, sizeof name, "%s%s", prefix, key->text);
    else if (key->kind == INT) snprintf(name, sizeof name, "%s%lld", prefix, (long long)key->integer);
    else return osp_fail(OSP_ERR_FORMAT, "%s: a state dict key that is neither a string nor an integer", m->path);
    if (value->kind == TENSOR) {
      OSP_TRY(add_tensor(m, name, value, c));
    } else if (value->kind == DICT) {
      strncat(name, ".", sizeof name - strlen(name) - 1);
      OSP_TRY(flatten(m, value, name, c));
    }
  }
  return OSP_OK;
}

/* {"state_dict": {...}} or {"model": {...}} without tensors of its own: the inner dict. */
static const object *unwrap(const machine *m, const object *top, osp_torch_checkpoint *c) {
  for (int i = 0; i + 1 < top->count; i += 2)
    if (item(m, top, i + 1)->kind == TENSOR) return top;
  for (int i = 0; i + 1 < top->count; i += 2) {
    const object *key = item(m, top, i);
    if (key->kind == STRING && (!strcmp(key->text, "state_dict") || !strcmp(key->text, "model")) &&
        item(m, top, i + 1)->kind == DICT) {
      snprintf(c->unwrapped, sizeof c->unwrapped, "%s", key->text);
      return item(m, top, i + 1);
    }
  }
  return top;
}

/* "<prefix>/data.pkl": the one pickle at the archive's top level. */
static osp_status find_pickle(const osp_zip *zip, const osp_zip_entry **pickle, char *prefix, size_t size) {
  for (int i = 0; i < zip->count; i++) {
    const char *name = zip->entries[i].name, *slash = strchr(name, '/');
    if (slash && !strcmp(slash, "/data.pkl")) {
      snprintf(prefix, size, "%.*s", (int)(slash - name + 1), name);
      *pickle = &zip->entries[i];
      return OSP_OK;
    }
  }
  return osp_fail(OSP_ERR_FORMAT, "%s: a zip archive without <name>/data.pkl: not a checkpoint from torch.save",
                  zip->path);
}

static void free_machine(machine *m) {
  for (int i = 0; i < m->pool_count; i++) {
    free(m->pool[i].text);
    free(m->pool[i].items);
  }
  free(m->pool);
  free(m->stack);
  free(m->memo);
}

/* The tensors of the indexed archive c->zip. */
static osp_status read_checkpoint(osp_torch_checkpoint *c) {
  const char *path = c->zip.path;
  const osp_zip_entry *pickle = NULL;
  char prefix[256] = "", order_name[300];
  osp_status status = find_pickle(&c->zip, &pickle, prefix, sizeof prefix);
  snprintf(order_name, sizeof order_name, "%sbyteorder", prefix);
  const osp_zip_entry *order = status == OSP_OK ? osp_zip_find(&c->zip, order_name) : NULL;
  if (order && (order->size != 6 || memcmp(order->data, "little", 6)))
    status = osp_fail(OSP_ERR_UNSUPPORTED, "%s: a big-endian checkpoint", path);
  machine m = {.path = path, .zip = &c->zip, .prefix = prefix};
  int result = -1;
  if (status == OSP_OK) status = run(&m, pickle, &result);
  if (status == OSP_OK && m.pool[result].kind != DICT)
    status = osp_fail(OSP_ERR_FORMAT, "%s: the pickle holds no dict of tensors (a state dict)", path);
  if (status == OSP_OK && !(c->tensors = calloc((size_t)m.pool_count + 1, sizeof *c->tensors)))
    status = osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  if (status == OSP_OK) status = flatten(&m, unwrap(&m, &m.pool[result], c), "", c);
  free_machine(&m);
  return status;
}

osp_status osp_torch_checkpoint_open(const char *path, osp_torch_checkpoint *c) {
  *c = (osp_torch_checkpoint){0};
  OSP_TRY(osp_zip_open(path, &c->zip));
  const osp_status status = read_checkpoint(c);
  if (status != OSP_OK) osp_torch_checkpoint_close(c);
  return status;
}

osp_status osp_torch_checkpoint_parse(const char *label, const unsigned char *bytes, size_t size,
                                      osp_torch_checkpoint *c) {
  *c = (osp_torch_checkpoint){0};
  OSP_TRY(osp_zip_parse(label, bytes, size, &c->zip));
  const osp_status status = read_checkpoint(c);
  if (status != OSP_OK) osp_torch_checkpoint_close(c);
  return status;
}

void osp_torch_checkpoint_close(osp_torch_checkpoint *c) {
  for (int i = 0; i < c->count; i++) {
    free(c->tensors[i].name);
    free(c->tensors[i].owned);
  }
  free(c->tensors);
  osp_zip_close(&c->zip);
  *c = (osp_torch_checkpoint){0};
}
