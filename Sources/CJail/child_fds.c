/* Child: the descriptor table the program starts with is exactly 0, 1, 2 and (when given) the
 * Bridge socket as 3. Everything else inherited from the multi-threaded parent is closed: a leaked daemon fd (control socket, database, another worker's Bridge) would be
 * a capability handed to untrusted code. */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Sources may themselves be numbered 0..3: lift them above the targets first. */
static int lift(int fd) {
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    return fcntl(fd, F_DUPFD_CLOEXEC, 16);
}

int child_fds(const struct cjail_spec *s, int *err_fd, int *status_fd, int32_t *index) {
    int src[4] = {lift(s->stdin_fd), lift(s->stdout_fd), lift(s->stderr_fd), lift(s->bridge_fd)};
    const int32_t given[4] = {s->stdin_fd, s->stdout_fd, s->stderr_fd, s->bridge_fd};
    for (int i = 0; i < 4; i++) {
        if (src[i] < 0 && (i < 3 || given[i] >= 0)) {
            *index = i;
            return given[i] < 0 ? EBADF : errno;
        }
    }
    for (int i = 0; i < 4; i++) {
        if (src[i] < 0) {
            close(i);
            continue;
        }
        if (dup2(src[i], i) < 0) { *index = i; return errno; } /* dup2 clears FD_CLOEXEC on i */
    }
    /* Our own pipes move to 4 and 5 (close-on-exec: the program never sees them); then every
     * other inherited descriptor is closed now, not merely marked: the PID-1 reaper never execs,
     * and the Landlock step needs free descriptors under the worker's RLIMIT_NOFILE. */
    if (dup3(*err_fd, 4, O_CLOEXEC) < 0) return errno; /* both are >= 10 (parent_clone.c) */
    *err_fd = 4;
    unsigned first_free = 5;
    if (*status_fd >= 0) {
        if (dup3(*status_fd, 5, O_CLOEXEC) < 0) return errno;
        *status_fd = 5;
        first_free = 6;
    }
    if (syscall(SYS_close_range, first_free, ~0U, 0) < 0) return errno;
    return 0;
}
