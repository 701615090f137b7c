/* See fd_passing.h. */
#define _GNU_SOURCE
#include "fd_passing.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

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
