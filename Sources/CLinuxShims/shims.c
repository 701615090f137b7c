#define _GNU_SOURCE
#include "clinux_shims.h"

#include <sys/signalfd.h>
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
