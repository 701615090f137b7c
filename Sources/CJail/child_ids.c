/* Child: identity. Raw syscalls on purpose: glibc's setresuid/setgroups wrappers broadcast the
 * change to every thread of the process (SIGSETXID) — in a child cloned from a multi-threaded
 * parent those threads do not exist and the wrapper can wait forever. */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

int child_setgroups(void) { return syscall(SYS_setgroups, 0, NULL) < 0 ? errno : 0; }

int child_setgid(uint32_t gid) { return syscall(SYS_setresgid, gid, gid, gid) < 0 ? errno : 0; }

int child_setuid(uint32_t uid) { return syscall(SYS_setresuid, uid, uid, uid) < 0 ? errno : 0; }
