/* Small file-system helpers the writers share (checkpoints, video folders). */
#ifndef OSP_CORE_FILES_H
#define OSP_CORE_FILES_H

/* Removes a folder of plain files and the folder itself, as far as it can (a partial output left
 * by a crash, or an old folder replaced by a new one); a missing folder is nothing to do. */
void osp_remove_folder(const char *path);

#endif
