/* tmpfiles.h — temporary files for tests: mkstemps under /tmp with a name prefix and an ending
 * (".jsonl", or ""), all removed by tmp_files_remove() at the end of the test program.
 * Needs _GNU_SOURCE (mkstemps) defined before the first system header. */
#ifndef HAT_TMPFILES_H
#define HAT_TMPFILES_H
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"

#define TMP_FILES_MAX 128
static char tmp_names[TMP_FILES_MAX][48];
static int n_tmp;

/* a temporary file holding text, named /tmp/<prefix>XXXXXX<ext> */
static inline const char *tmp_file_named(const char *prefix, const char *text, const char *ext) {
    CHECK(n_tmp < TMP_FILES_MAX && strlen(prefix) + strlen(ext) < 32, "too many temporary files");
    char *name = tmp_names[n_tmp++];
    snprintf(name, sizeof tmp_names[0], "/tmp/%sXXXXXX%s", prefix, ext);
    int fd = mkstemps(name, (int)strlen(ext));
    CHECK(fd >= 0, "mkstemps failed");
    size_t n = strlen(text);
    CHECK(write(fd, text, n) == (ssize_t)n, "write to %s failed", name);
    close(fd);
    return name;
}
static inline void tmp_files_remove(void) {
    for (int i = 0; i < n_tmp; i++) unlink(tmp_names[i]);
    n_tmp = 0;
}
#endif
