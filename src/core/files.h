/* Small file-system helpers the writers share (checkpoints, video folders). */
#ifndef OSP_CORE_FILES_H
#define OSP_CORE_FILES_H

#include "osp.h"

/* Removes a folder of plain files and the folder itself, as far as it can (a partial output left
 * by a crash, or an old folder replaced by a new one); a missing folder is nothing to do. */
void osp_remove_folder(const char *path);

/* Creates a folder and any missing parents (mkdir -p); an existing folder is fine. Fails naming
 * the folder that could not be made. */
osp_status osp_make_folders(const char *path);

#endif
