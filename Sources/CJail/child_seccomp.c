/* Child: install the seccomp programs compiled by libseccomp in the parent. Installing is one
 * syscall per filter; nothing is parsed or allocated here. Several filters stack: the kernel
 * runs all of them and the most restrictive action wins (used for masked deny rules that
 * libseccomp cannot merge into an allowlist, see SeccompCompiler.swift). */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

int child_seccomp(const struct cjail_spec *s, int32_t *index) {
    for (uint32_t i = 0; i < s->filter_count; i++) {
        struct sock_fprog prog = {
            .len = (unsigned short)s->filters[i].count,
            .filter = (struct sock_filter *)s->filters[i].insns};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
            *index = (int32_t)i;
            return errno;
        }
    }
    return 0;
}
