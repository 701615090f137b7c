/* See fd_passing.h. */
#define _GNU_SOURCE
#include "fd_passing.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int cjail_send_with_fds(int sock, const void *data, size_t len, const int *fds, int n) {
    if (n < 0 || n > CJAIL_MAX_PASSED_FDS) return EINVAL;
    union {
        char buf[CMSG_SPACE(sizeof(int) * CJAIL_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {(void *)data, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n);
    }
    ssize_t w;
    do { w = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (w < 0 && errno == EINTR);
    if (w < 0) return errno;
    return (size_t)w == len ? 0 : EPROTO;
}

long cjail_recv_with_fds(int sock, void *data, size_t len, int flags, int *fds, int max, int *n_fds) {
    *n_fds = 0;
    if (max < 0 || max > CJAIL_MAX_PASSED_FDS) return -EINVAL;
    union {
        char buf[CMSG_SPACE(sizeof(int) * CJAIL_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {data, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t r;
    do { r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    int count = 0, extra = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (count < max) fds[count++] = fd;
            else { close(fd); extra = 1; }
        }
    }
    if (extra || (msg.msg_flags & MSG_CTRUNC)) {
        for (int i = 0; i < count; i++) close(fds[i]);
        return -EPROTO;
    }
    *n_fds = count;
    return (long)r;
}
