/* osp bench --dry-run: the bytes a forward spread over ranks would send, from the plans alone (no
 * device, no weights), for Ulysses and SSP side by side. */
#ifndef OSP_TOOLS_BENCH_TRAFFIC_H
#define OSP_TOOLS_BENCH_TRAFFIC_H

#include <jansson.h>
#include <stdbool.h>

#include "core/config.h"

typedef struct {
  const char *name;   /* "720p" */
  int64_t latent[3];  /* F, H, W of the latents */
} bench_traffic_shape;

/* Prints, per block pattern and for the whole forward, the bytes each rank of a sequence group
 * sends (mean over ranks) with Ulysses in every block and with SSP in the Skiparse blocks, for
 * `ranks` ranks (two groups of ranks/2 with cfg_parallel, each running one sample of the guided
 * pair); values of `value_bytes`. Appends the numbers to `results`. */
osp_status bench_traffic(const osp_model_config *config, const bench_traffic_shape *shape, int ranks,
                         bool cfg_parallel, int value_bytes, json_t *results);

#endif
