/* libFuzzer target: any byte string is either refused by osp_st_parse with a message, or accepted
 * with entries that can be found by name and converted to float32 without reading out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Entries with more elements than this are not converted (they cannot exceed the input size). */
enum { MAX_CONVERTED = 1 << 16 };
static float converted[MAX_CONVERTED];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  osp_st_file file;
  if (osp_st_parse("fuzz.safetensors", data, size, &file) != OSP_OK) return 0;
  for (int i = 0; i < file.count; i++) {
    const osp_st_entry *entry = &file.entries[i];
    if (osp_st_find(&file, entry->name) != entry) __builtin_trap(); /* names are unique */
    if (entry->data < data || entry->data + (entry->end - entry->begin) > data + size)
      __builtin_trap();
    if (osp_st_numel(entry) <= MAX_CONVERTED) osp_st_to_f32(entry, converted);
  }
  osp_st_close(&file);
  return 0;
}
