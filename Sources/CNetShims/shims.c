/* See include/cnet_shims.h. Only thin wrappers: no logic lives here. */
#define _GNU_SOURCE 1
#include "cnet_shims.h"
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

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
int cnet_enable_peek_offset(int fd) {
    int zero = 0;
    return setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero);
}
long cnet_recv_peek(int fd, void *buf, unsigned long len) { return (long)recv(fd, buf, len, MSG_PEEK); }
int cnet_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }
