/* core.cu — element sizes, the per-thread last error, and the device-to-device copy. */
#include "common.cuh"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static thread_local char hk_err_buf[512];

int hk_fail(const char *op, const char *fmt, ...) {
    int n = snprintf(hk_err_buf, sizeof hk_err_buf, "%s: ", op);
    if (n < 0 || (size_t)n >= sizeof hk_err_buf) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hk_err_buf + n, sizeof hk_err_buf - (size_t)n, fmt, ap);
    va_end(ap);
    return 1;
}

void hk_fail_append(const char *fmt, ...) {
    const size_t n = strlen(hk_err_buf);
    if (n + 1 >= sizeof hk_err_buf) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hk_err_buf + n, sizeof hk_err_buf - n, fmt, ap);
    va_end(ap);
}

extern "C" const char *hk_last_error(void) { return hk_err_buf; }

extern "C" size_t hk_dtype_size(hk_dtype t) {
    switch (t) {
    case HK_F32: return 4;
    case HK_F16: return 2;
    case HK_BF16: return 2;
    }
    return 0;
}

extern "C" int hk_copy(void *stream, void *dst, const void *src, size_t bytes) {
    static const char *const op = "hk_copy";
    if (bytes == 0) return 0;
    HK_CHECK(op, dst != NULL && src != NULL, "dst %p, src %p", dst, (void *)src);
    HK_CUDA(op, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream));
    return 0;
}
