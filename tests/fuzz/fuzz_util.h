/* fuzz_util.h — shared by the libFuzzer harnesses (tests/fuzz/README.md): the input as a file a
 * path-taking reader can open (an anonymous memory file, /proc/self/fd/N), and the real model
 * (HAT_FUZZ_MODEL, read once) for the readers that check a file against its model. */
#ifndef HAT_FUZZ_UTIL_H
#define HAT_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* the bytes as a file: returns its path (static buffer) and *fd, to be closed by the caller */
static inline const char *fuzz_as_file(const uint8_t *data, size_t size, int *fd) {
    static char path[64];
    *fd = memfd_create("fuzz", 0);
    if (*fd < 0) { perror("memfd_create"); abort(); }
    for (size_t o = 0; o < size;) {
        ssize_t w = write(*fd, data + o, size - o);
        if (w <= 0) { perror("write"); abort(); }
        o += (size_t)w;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", *fd);
    return path;
}

#endif
