/* libFuzzer target: osp_config_parse on arbitrary bytes must return a status, never crash or
 * leak, and whatever it accepts must validate and have a positive parameter count. Seeds are in
 * tests/fuzz/config/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  osp_model_config cfg;
  if (osp_config_parse("fuzz", (const char *)data, size, &cfg) != OSP_OK) return 0;
  if (osp_config_validate("fuzz", &cfg) != OSP_OK || osp_config_param_count(&cfg) <= 0) abort();
  return 0;
}
