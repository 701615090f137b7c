#ifndef CFUZZ_SUPPORT_H
#define CFUZZ_SUPPORT_H
#include <stddef.h>
#include <stdint.h>
typedef int (*cfuzz_test_one_input)(const uint8_t *data, size_t size);
/* Runs libFuzzer's driver if the binary was linked with -sanitize=fuzzer; returns -1 if not. */
int cfuzz_run_driver(int *argc, char ***argv, cfuzz_test_one_input fn);
#endif
