/* Child: Landlock, defense in depth under the mount namespace: even if a mount were escaped,
 * the process may only touch the listed trees. Rules name paths inside the jail, so they are
 * applied after pivot_root. The parent probed the ABI and masked the access rights to it. */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/syscall.h>
#include <unistd.h>

struct ll_attr { /* landlock_ruleset_attr of ABI 6; older kernels get a shorter size */
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

static size_t attr_size(int abi) {
    if (abi >= 6) return 24;
    if (abi >= 4) return 16;
    return 8;
}

static int add_rules(int ruleset, const struct cjail_spec *s, int32_t *index) {
    for (uint32_t i = 0; i < s->landlock_rule_count; i++) {
        int fd = open(s->landlock_rules[i].path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT) continue; /* optional mount absent in this launch (e.g. /sdk) */
            *index = (int32_t)i;
            return errno;
        }
        struct landlock_path_beneath_attr pb = {
            .allowed_access = s->landlock_rules[i].access, .parent_fd = fd};
        long r = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
        int e = r < 0 ? errno : 0;
        close(fd);
        if (e) {
            *index = (int32_t)i;
            return e;
        }
    }
    return 0;
}

int child_landlock(const struct cjail_spec *s, int32_t *index) {
    struct ll_attr attr = {s->landlock_handled_fs, s->landlock_handled_net, s->landlock_scoped};
    long rs = syscall(SYS_landlock_create_ruleset, &attr, attr_size(s->landlock_abi), 0);
    if (rs < 0) return errno;
    int e = add_rules((int)rs, s, index);
    if (!e && syscall(SYS_landlock_restrict_self, (int)rs, 0) < 0) e = errno;
    close((int)rs);
    return e;
}
