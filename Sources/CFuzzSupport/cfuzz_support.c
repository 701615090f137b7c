#include "cfuzz_support.h"
/* A weak reference: resolved when libFuzzer is linked in (-sanitize=fuzzer), NULL otherwise,
 * so the same fuzz target links in ordinary builds and replays its corpus there. */
extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t)) __attribute__((weak));
int cfuzz_run_driver(int *argc, char ***argv, cfuzz_test_one_input fn) {
    if (!LLVMFuzzerRunDriver) return -1;
    return LLVMFuzzerRunDriver(argc, argv, fn);
}
