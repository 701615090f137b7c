#ifndef CFUZZ_SUPPORT_H
#define CFUZZ_SUPPORT_H
#include <stddef.h>
#include <stdint.h>
typedef int (*cfuzz_test_one_input)(const uint8_t *data, size_t size);
/* Runs libFuzzer's driver if the binary was linked with -sanitize=fuzzer; returns -1 if not. */
int cfuzz_run_driver(int *argc, char ***argv, cfuzz_test_one_input fn);
/* Replays the file at `path` once through `fn`; 1 when read, 0 when it cannot be opened. */
int cfuzz_replay_file(const char *path, cfuzz_test_one_input fn);
/* exit(3): the fuzz driver's end (stdio flushed). */
void cfuzz_exit(int status) __attribute__((noreturn));
#endif
