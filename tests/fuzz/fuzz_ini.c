/* fuzz_ini.c — the INI parser and the run configuration's resolver on arbitrary bytes: ini_parse
 * on the text, then config_load on it as a file (unknown keys, numbers, enums, sections, the
 * profile and prompt files it names: nothing it accepts or refuses may crash). */
#include "fuzz_util.h"

#include <string.h>

#include "core/common.h"
#include "core/ini.h"
#include "run/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[HAT_ERRLEN];
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    ini_doc d = {.path = "fuzz.ini", .err = err, .errlen = sizeof err};
    (void)ini_parse(&d, text);
    ini_free(&d);
    free(text);
    int fd;
    const char *path = fuzz_as_file(data, size, &fd);
    hat_config c;
    if (config_load(&c, path, err, sizeof err) == HAT_OK) {
        (void)config_validate(&c, c.n_cloud + c.n_devices, 30, 8192, err, sizeof err);
        config_free(&c);
    }
    close(fd);
    return 0;
}
