/* config_timing.h — the timing keys of the run file (config.h): [cloud] compute with the servers
 * profiles file, [run] timing_shape with the shapes file, [run] max_distorted. Internal to
 * config.c. */
#ifndef HAT_CONFIG_TIMING_H
#define HAT_CONFIG_TIMING_H

#include <stddef.h>

#include "core/ini.h"
#include "run/config.h"

int config_timing_load(hat_config *c, const ini_doc *d);

#endif
