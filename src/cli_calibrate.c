/* cli_calibrate.c — placeholder */
#include <stdio.h>
int cli_calibrate(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "hat calibrate: not built yet\n"); return 2; }
