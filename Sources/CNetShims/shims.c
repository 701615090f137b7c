/* See include/cnet_shims.h. Only thin wrappers: no logic lives here. */
#define _GNU_SOURCE 1
#include "cnet_shims.h"
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int cnet_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

static int ctl(int epfd, int op, int fd, unsigned int events, unsigned long long token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev);
}
int cnet_epoll_add(int epfd, int fd, unsigned int events, unsigned long long token) { return ctl(epfd, EPOLL_CTL_ADD, fd, events, token); }
int cnet_epoll_mod(int epfd, int fd, unsigned int events, unsigned long long token) { return ctl(epfd, EPOLL_CTL_MOD, fd, events, token); }
int cnet_epoll_del(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

void *cnet_epoll_events_alloc(int count) { return calloc((size_t)count, sizeof(struct epoll_event)); }
void cnet_epoll_events_free(void *events) { free(events); }
int cnet_epoll_wait(int epfd, void *events, int count, int timeout_ms) { return epoll_wait(epfd, events, count, timeout_ms); }
unsigned long long cnet_epoll_event_token(const void *events, int index) { return ((const struct epoll_event *)events)[index].data.u64; }
unsigned int cnet_epoll_event_mask(const void *events, int index) { return ((const struct epoll_event *)events)[index].events; }

int cnet_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
int cnet_accept4(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }
long cnet_recv_peek(int fd, void *buf, unsigned long len) { return (long)recv(fd, buf, len, MSG_PEEK); }
int cnet_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }

long cnet_recv_fds(int fd, void *buf, unsigned long len, int *fds, int max_fds, int *nfds) {
    union { struct cmsghdr align; char bytes[CMSG_SPACE(sizeof(int) * 8)]; } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (max_fds > 8) max_fds = 8;
    *nfds = 0;
    if (max_fds > 0) {
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)max_fds);
    }
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 || max_fds <= 0) return (long)n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (*nfds < max_fds) fds[(*nfds)++] = got; else close(got);
        }
    }
    return (long)n;
}

long cnet_send_fd(int fd, const void *buf, unsigned long len, int passed) {
    union { struct cmsghdr align; char bytes[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes, .msg_controllen = sizeof control.bytes };
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &passed, sizeof passed);
    return (long)sendmsg(fd, &msg, MSG_NOSIGNAL);
}
