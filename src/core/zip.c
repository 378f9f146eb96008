/* Zip archives (zip.h), from the end: the end-of-central-directory record (and its ZIP64 twin),
 * then each central-directory header (its ZIP64 extra field where a size or offset is 0xFFFFFFFF),
 * then each entry's local header, after which the STORED bytes follow. */
#include "core/zip.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"

enum {
  END_RECORD = 0x06054b50, END_RECORD_BYTES = 22, ZIP64_LOCATOR = 0x07064b50, ZIP64_LOCATOR_BYTES = 20,
  ZIP64_END_RECORD = 0x06064b50, CENTRAL_HEADER = 0x02014b50, CENTRAL_HEADER_BYTES = 46,
  LOCAL_HEADER = 0x04034b50, LOCAL_HEADER_BYTES = 30, ZIP64_EXTRA = 0x0001, MAX_COMMENT = 0xFFFF
};

static uint64_t le(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static bool inside(const osp_zip *z, uint64_t offset, uint64_t bytes) {
  return offset <= z->map_size && bytes <= z->map_size - offset;
}

/* The central directory's offset and entry count. */
static osp_status find_directory(const osp_zip *z, uint64_t *offset, uint64_t *count) {
  if (z->map_size < END_RECORD_BYTES) return osp_fail(OSP_ERR_FORMAT, "%s: not a zip archive (too short)", z->path);
  const size_t lowest = z->map_size > END_RECORD_BYTES + MAX_COMMENT ? z->map_size - END_RECORD_BYTES - MAX_COMMENT : 0;
  size_t at = z->map_size - END_RECORD_BYTES;
  while (le(z->map + at, 4) != END_RECORD) {
    if (at == lowest) return osp_fail(OSP_ERR_FORMAT, "%s: not a zip archive (no end-of-directory record): a "
                                      "PyTorch checkpoint from torch.save is one", z->path);
    at--;
  }
  *count = le(z->map + at + 10, 2);
  *offset = le(z->map + at + 16, 4);
  if (*count != 0xFFFF && *offset != 0xFFFFFFFF) return OSP_OK;
  /* ZIP64: the locator just before the record points at the 64-bit end record. */
  if (at < ZIP64_LOCATOR_BYTES || le(z->map + at - ZIP64_LOCATOR_BYTES, 4) != ZIP64_LOCATOR)
    return osp_fail(OSP_ERR_FORMAT, "%s: a ZIP64 archive without its locator", z->path);
  const uint64_t record = le(z->map + at - ZIP64_LOCATOR_BYTES + 8, 8);
  if (!inside(z, record, 56) || le(z->map + record, 4) != ZIP64_END_RECORD)
    return osp_fail(OSP_ERR_FORMAT, "%s: the ZIP64 end record is not where its locator says", z->path);
  *count = le(z->map + record + 32, 8);
  *offset = le(z->map + record + 48, 8);
  return OSP_OK;
}

/* The 64-bit values a ZIP64 extra field holds for the fields marked 0xFFFFFFFF, in order. */
static void read_zip64_extra(const unsigned char *extra, uint64_t bytes, uint64_t *size, uint64_t *compressed,
                             uint64_t *offset) {
  for (uint64_t at = 0; at + 4 <= bytes;) {
    const uint64_t id = le(extra + at, 2), length = le(extra + at + 2, 2);
    if (id == ZIP64_EXTRA) {
      uint64_t *fields[3] = {size, compressed, offset}, field = at + 4;
      for (int i = 0; i < 3; i++)
        if (*fields[i] == 0xFFFFFFFF && field + 8 <= at + 4 + length && field + 8 <= bytes) {
          *fields[i] = le(extra + field, 8);
          field += 8;
        }
      return;
    }
    at += 4 + length;
  }
}

/* One central-directory header at *at → an entry; *at moves past it. */
static osp_status read_entry(osp_zip *z, uint64_t *at, osp_zip_entry *e) {
  const unsigned char *h = z->map + *at;
  if (!inside(z, *at, CENTRAL_HEADER_BYTES) || le(h, 4) != CENTRAL_HEADER)
    return osp_fail(OSP_ERR_FORMAT, "%s: a broken central directory (offset %llu)", z->path, (unsigned long long)*at);
  const uint64_t method = le(h + 10, 2), name_bytes = le(h + 28, 2), extra_bytes = le(h + 30, 2),
                 comment_bytes = le(h + 32, 2);
  uint64_t compressed = le(h + 20, 4), size = le(h + 24, 4), local = le(h + 42, 4);
  if (!inside(z, *at + CENTRAL_HEADER_BYTES, name_bytes + extra_bytes + comment_bytes))
    return osp_fail(OSP_ERR_FORMAT, "%s: truncated (a central-directory header runs past the end)", z->path);
  read_zip64_extra(h + CENTRAL_HEADER_BYTES + name_bytes, extra_bytes, &size, &compressed, &local);
  if (!(e->name = strndup((const char *)h + CENTRAL_HEADER_BYTES, name_bytes)))
    return osp_fail(OSP_ERR_MEMORY, "%s: out of memory", z->path);
  if (method != 0)
    return osp_fail(OSP_ERR_UNSUPPORTED, "%s: entry '%s' is compressed (method %llu): torch.save stores its entries, "
                    "and so must the file", z->path, e->name, (unsigned long long)method);
  if (!inside(z, local, LOCAL_HEADER_BYTES) || le(z->map + local, 4) != LOCAL_HEADER)
    return osp_fail(OSP_ERR_FORMAT, "%s: entry '%s': no local header at offset %llu (truncated?)", z->path, e->name,
                    (unsigned long long)local);
  const uint64_t start = local + LOCAL_HEADER_BYTES + le(z->map + local + 26, 2) + le(z->map + local + 28, 2);
  if (compressed != size || !inside(z, start, size))
    return osp_fail(OSP_ERR_FORMAT, "%s: entry '%s' (%llu bytes) runs past the end of the file (truncated?)", z->path,
                    e->name, (unsigned long long)size);
  e->data = z->map + start;
  e->size = size;
  *at += CENTRAL_HEADER_BYTES + name_bytes + extra_bytes + comment_bytes;
  return OSP_OK;
}

static osp_status map_file(osp_zip *z) {
  int fd = open(z->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return osp_fail(OSP_ERR_IO, "%s: cannot open: %s", z->path, strerror(errno));
  struct stat info;
  osp_status status = OSP_OK;
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) status = osp_fail(OSP_ERR_IO, "%s: not a regular file", z->path);
  else if (info.st_size == 0) status = osp_fail(OSP_ERR_FORMAT, "%s: empty file, expected a PyTorch checkpoint", z->path);
  if (status == OSP_OK) {
    z->map_size = (size_t)info.st_size;
    void *map = mmap(NULL, z->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) status = osp_fail(OSP_ERR_IO, "%s: cannot map: %s", z->path, strerror(errno));
    else z->map = map, z->mapped = 1;
  }
  close(fd);
  return status;
}

/* The central directory of zip->map into zip->entries. */
static osp_status index_archive(osp_zip *zip) {
  const char *path = zip->path;
  uint64_t offset = 0, count = 0;
  osp_status status = find_directory(zip, &offset, &count);
  if (status == OSP_OK && (count > zip->map_size / CENTRAL_HEADER_BYTES || !inside(zip, offset, 0)))
    status = osp_fail(OSP_ERR_FORMAT, "%s: the directory claims %llu entries at offset %llu (truncated?)", path,
                      (unsigned long long)count, (unsigned long long)offset);
  if (status == OSP_OK && !(zip->entries = calloc(count + 1, sizeof *zip->entries)))
    status = osp_fail(OSP_ERR_MEMORY, "%s: out of memory", path);
  for (uint64_t i = 0; status == OSP_OK && i < count; i++) {
    status = read_entry(zip, &offset, &zip->entries[i]);
    zip->count++;
  }
  return status;
}

osp_status osp_zip_open(const char *path, osp_zip *zip) {
  *zip = (osp_zip){0};
  if (!(zip->path = strdup(path))) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  osp_status status = map_file(zip);
  if (status == OSP_OK) status = index_archive(zip);
  if (status != OSP_OK) osp_zip_close(zip);
  return status;
}

osp_status osp_zip_parse(const char *label, const unsigned char *bytes, size_t size, osp_zip *zip) {
  *zip = (osp_zip){.map = (unsigned char *)bytes, .map_size = size}; /* read, never written through */
  if (!(zip->path = strdup(label))) return osp_fail(OSP_ERR_MEMORY, "out of memory");
  const osp_status status = index_archive(zip);
  if (status != OSP_OK) osp_zip_close(zip);
  return status;
}

const osp_zip_entry *osp_zip_find(const osp_zip *zip, const char *name) {
  for (int i = 0; i < zip->count; i++)
    if (!strcmp(zip->entries[i].name, name)) return &zip->entries[i];
  return NULL;
}

void osp_zip_close(osp_zip *zip) {
  for (int i = 0; i < zip->count; i++) free(zip->entries[i].name);
  free(zip->entries);
  if (zip->mapped) munmap(zip->map, zip->map_size);
  free(zip->path);
  *zip = (osp_zip){0};
}
