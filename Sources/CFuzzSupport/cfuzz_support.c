#include "cfuzz_support.h"
/* A weak reference: resolved when libFuzzer is linked in (-sanitize=fuzzer), NULL otherwise,
 * so the same fuzz target links in ordinary builds and replays its corpus there. */
extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t)) __attribute__((weak));
int cfuzz_run_driver(int *argc, char ***argv, cfuzz_test_one_input fn) {
    if (!LLVMFuzzerRunDriver) return -1;
    return LLVMFuzzerRunDriver(argc, argv, fn);
}

#include <stdio.h>
#include <stdlib.h>

/* Replays the file at `path` once through `fn` (the empty input gets a valid pointer).
 * Returns 1 when the file was read, 0 when it could not be opened. */
int cfuzz_replay_file(const char *path, cfuzz_test_one_input fn) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 65536, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) abort();
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
    }
    fclose(f);
    fn(buf, len);
    free(buf);
    return 1;
}

/* Ends the process (the fuzz driver's exit, flushing stdio). */
void cfuzz_exit(int status) { exit(status); }
