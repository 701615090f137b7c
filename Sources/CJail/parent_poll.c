/* Parent: epoll/eventfd wrappers for the Swift event loop (Glibc's Swift overlay does not export
 * <sys/epoll.h> or <sys/eventfd.h>). Not used by the child. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <unistd.h>

int cjail_poller_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cjail_poller_add(int ep, int fd) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLHUP, .data.fd = fd};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int cjail_poller_del(int ep, int fd) { return epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0; }

int cjail_poller_wait(int ep, int32_t *fds, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(ep, evs, max, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) fds[i] = evs[i].data.fd;
    return n;
}

int cjail_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int cjail_pipe_cloexec(int32_t fds[2]) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return -errno;
    fds[0] = p[0];
    fds[1] = p[1];
    return 0;
}
