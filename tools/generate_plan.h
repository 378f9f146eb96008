/* osp generate --dry-run: the memory plan of a whole generation, component by component, from
 * the configs alone (weights files are only mapped, never read). */
#ifndef OSP_TOOLS_GENERATE_PLAN_H
#define OSP_TOOLS_GENERATE_PLAN_H

#include "core/tensor.h"
#include "pipeline/model_dir.h"

/* Prints the plan of generating with the model folder `dir` (or, with dir NULL, the Wan2.1 preset
 * `preset`: its DiT, umT5-XXL and Wan2.1's VAE) at the settings' sizes, every component on `device`. */
osp_status generate_plan_print(const char *dir, const char *preset, osp_device device, const osp_t2v_settings *s);

#endif
