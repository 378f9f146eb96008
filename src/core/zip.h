/* Reading zip archives as torch.save writes them: every entry STORED (not compressed), ZIP64
 * where sizes or offsets pass 4 GiB. The file is mapped; entries are views into the map. */
#ifndef OSP_CORE_ZIP_H
#define OSP_CORE_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "osp.h"

typedef struct {
  char *name;
  const unsigned char *data;
  uint64_t size;
} osp_zip_entry;

typedef struct {
  char *path;
  unsigned char *map;
  size_t map_size;
  int mapped; /* 1: map came from mmap and is unmapped on close */
  int count;
  osp_zip_entry *entries;
} osp_zip;

/* Maps and indexes an archive; every entry is checked to lie inside the file. Compressed entries
 * are refused (torch.save stores its entries). On failure nothing needs closing. */
osp_status osp_zip_open(const char *path, osp_zip *zip);
/* The same over bytes in memory (the fuzzer's entry point); `label` names them in messages. The
 * bytes must outlive the archive. */
osp_status osp_zip_parse(const char *label, const unsigned char *bytes, size_t size, osp_zip *zip);
const osp_zip_entry *osp_zip_find(const osp_zip *zip, const char *name);
void osp_zip_close(osp_zip *zip);

#endif
