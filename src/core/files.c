/* File-system helpers (files.h). */
#include "core/files.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/status.h"

void osp_remove_folder(const char *path) {
  DIR *dir = opendir(path);
  if (!dir) return;
  char file[4352];
  for (struct dirent *e; (e = readdir(dir));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
        snprintf(file, sizeof file, "%s/%s", path, e->d_name) < (int)sizeof file)
      unlink(file);
  closedir(dir);
  rmdir(path);
}

/* mkdir that accepts a folder already there. */
static bool make_one(const char *path) {
  struct stat st;
  return mkdir(path, 0777) == 0 || (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

osp_status osp_make_folders(const char *path) {
  char partial[4096];
  if (snprintf(partial, sizeof partial, "%s", path) >= (int)sizeof partial)
    return osp_fail(OSP_ERR_ARGUMENT, "%.64s...: folder path too long", path);
  for (char *slash = strchr(partial + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    const bool made = make_one(partial);
    const int error = errno;
    *slash = '/';
    if (!made) return osp_fail(OSP_ERR_IO, "%s: cannot create the folder: %s", partial, strerror(error));
  }
  if (!make_one(partial)) return osp_fail(OSP_ERR_IO, "%s: cannot create the folder: %s", partial, strerror(errno));
  return OSP_OK;
}
