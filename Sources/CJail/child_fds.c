/* Child: the descriptor table the program starts with is exactly 0, 1, 2 and (when given) the
 * Bridge socket as 3. Everything else inherited from the multi-threaded parent is marked
 * close-on-exec: a leaked daemon fd (control socket, database, another worker's Bridge) would be
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
    if (fd < 0) return -1;
    return fcntl(fd, F_DUPFD_CLOEXEC, 16);
}

int child_fds(const struct cjail_spec *s, int err_fd, int status_fd) {
    (void)err_fd;
    (void)status_fd; /* both are O_CLOEXEC already, and >= 10 (parent_clone.c) */
    int src[4] = {lift(s->stdin_fd), lift(s->stdout_fd), lift(s->stderr_fd), lift(s->bridge_fd)};
    for (int i = 0; i < 3; i++)
        if (src[i] < 0) return EBADF;
    if (s->bridge_fd >= 0 && src[3] < 0) return EBADF;
    for (int i = 0; i < 4; i++) {
        if (src[i] < 0) {
            close(i);
            continue;
        }
        if (dup2(src[i], i) < 0) return errno; /* dup2 clears FD_CLOEXEC on the target */
        close(src[i]);
    }
    if (syscall(SYS_close_range, 4U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) return errno;
    return 0;
}
