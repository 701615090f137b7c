/* Child: resource limits (the per-process complement of the cgroup limits): RLIMIT_CORE 0 so a
 * crash never writes the program's memory to disk, NOFILE and FSIZE bounded. */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <sys/resource.h>

int child_rlimits(const struct cjail_spec *s, int32_t *index) {
    for (uint32_t i = 0; i < s->rlimit_count; i++) {
        struct rlimit rl = {.rlim_cur = s->rlimits[i].soft, .rlim_max = s->rlimits[i].hard};
        if (setrlimit(s->rlimits[i].resource, &rl) < 0) {
            *index = (int32_t)i;
            return errno;
        }
    }
    return 0;
}
