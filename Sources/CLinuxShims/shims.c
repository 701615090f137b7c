#define _GNU_SOURCE
#include "clinux_shims.h"

#include <sys/signalfd.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <errno.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

int clinux_signalfd(const sigset_t *sigs) { return signalfd(-1, sigs, SFD_CLOEXEC); }

int clinux_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}

int clinux_thread_fs_identity(unsigned int uid, unsigned int gid, const unsigned int *groups, int ngroups) {
    if (syscall(SYS_setgroups, (size_t)ngroups, groups) != 0) return -1;
    /* setfsgid/setfsuid return the previous value and never fail visibly: ask again to check. */
    setfsgid(gid);
    if ((unsigned int)setfsgid((gid_t)-1) != gid) { errno = EPERM; return -1; }
    setfsuid(uid);
    if ((unsigned int)setfsuid((uid_t)-1) != uid) { errno = EPERM; return -1; }
    return 0;
}

int clinux_drop_bounding_set(void) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break; /* past the kernel's last capability */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) return -errno;
    }
    return 0;
}

int clinux_drop_to(unsigned int uid, unsigned int gid, const char **step) {
    gid_t g = gid;
    *step = "ambient";
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -errno;
    *step = "setgroups";
    if (setgroups(1, &g) < 0) return -errno;
    *step = "setresgid";
    if (setresgid(gid, gid, gid) < 0) return -errno;
    *step = "setresuid";
    if (setresuid(uid, uid, uid) < 0) return -errno;
    /* Leaving uid 0 already emptied permitted and effective (no SECBIT_KEEP_CAPS); capset says
     * so explicitly, and fails closed if anything is left that cannot be dropped. */
    *step = "capset";
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0, 0, 0}, {0, 0, 0}};
    if (syscall(SYS_capset, &h, d) < 0) return -errno;
    *step = "no_new_privs";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -errno;
    *step = NULL;
    return 0;
}

int clinux_confine_unprivileged(const char **step) {
    *step = "ambient";
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -errno;
    *step = "capset";
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0, 0, 0}, {0, 0, 0}};
    if (syscall(SYS_capset, &h, d) < 0) return -errno;
    *step = "no_new_privs";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -errno;
    *step = NULL;
    return 0;
}

int clinux_seccomp_install(const void *insns, unsigned long len) {
    struct sock_fprog prog = {(unsigned short)(len / sizeof(struct sock_filter)), (struct sock_filter *)insns};
    if (len == 0 || len % sizeof(struct sock_filter) != 0 || len / sizeof(struct sock_filter) > 4096) return -EINVAL;
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
    if (r < 0) return -errno;
    return r > 0 ? -ESRCH : 0; /* TSYNC: a positive result is the id of a thread that could not be synced */
}
