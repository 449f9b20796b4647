/* config_timing.c — [cloud] compute, [run] timing_shape and max_distorted (config_timing.h). */
#include "run/config_timing.h"

#include "core/common.h"
#include "timing/profiles.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AT(sec, key) ini_find(d, sec, key), sec, key

/* the name's entry among n records `stride` bytes apart that start with their name, or -1; the
 * error for an unknown one lists the known names */
static int find_named(const ini_doc *d, const char *sec, const char *key, const char *name, const char *file,
                      const char *first, size_t stride, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(first + (size_t)i * stride, name)) return i;
    char list[384];
    size_t len = 0;
    list[0] = 0;
    for (int i = 0; i < n && len < sizeof list; i++) {
        const int w = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", first + (size_t)i * stride);
        len += w > 0 ? (size_t)w : 0;
    }
    ini_fail_value(d, ini_find(d, sec, key), sec, key, "unknown name; known in %s: %s, none", file, list);
    return -1;
}

static int load_server(hat_config *c, const ini_doc *d, const char *name) {
    hw_profile *all;
    int n, rc = hw_profiles_load(c->servers_path, HW_SERVER, &all, &n, d->err, d->errlen);
    if (rc) return rc;
    const int k = find_named(d, "cloud", "compute", name, c->servers_path, all[0].name, sizeof *all, n);
    if (k >= 0) c->cloud_compute = all[k];
    free(all);
    return k >= 0 ? HAT_OK : HAT_ERR_ARG;
}

static int load_shape(hat_config *c, const ini_doc *d) {
    model_shape *all;
    int n, rc = shapes_load(c->shapes_path, &all, &n, d->err, d->errlen);
    if (rc) return rc;
    const int k = find_named(d, "run", "timing_shape", c->shape_name, c->shapes_path, all[0].name, sizeof *all, n);
    if (k >= 0) c->shape = all[k];
    free(all);
    return k >= 0 ? HAT_OK : HAT_ERR_ARG;
}

int config_timing_load(hat_config *c, const ini_doc *d) {
    char comp[CFG_NAME];
    int rc;
    if ((rc = ini_str(d, AT("profiles", "servers"), "configs/servers.ini", c->servers_path, sizeof c->servers_path)) ||
        (rc = ini_str(d, AT("profiles", "shapes"), "configs/shapes.ini", c->shapes_path, sizeof c->shapes_path)) ||
        (rc = ini_str(d, AT("cloud", "compute"), "none", comp, sizeof comp)) ||
        (rc = ini_str(d, AT("run", "timing_shape"), "none", c->shape_name, sizeof c->shape_name)) ||
        (rc = ini_double(d, AT("run", "max_distorted"), 0.01, 0, 0, 1, &c->max_distorted)) ||
        (rc = ini_double(d, AT("run", "time_scale"), 1, 1, 0, 1e6, &c->time_scale)))
        return rc;
    memset(&c->cloud_compute, 0, sizeof c->cloud_compute);
    strcpy(c->cloud_compute.name, "none");
    if (strcmp(comp, "none") && (rc = load_server(c, d, comp))) return rc;
    if (strcmp(c->shape_name, "none") && (rc = load_shape(c, d))) return rc;
    return HAT_OK;
}
