/* File-system helpers (files.h). */
#include "core/files.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
