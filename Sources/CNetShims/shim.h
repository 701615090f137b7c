/* CNetShims: the Linux socket/epoll/eventfd declarations Swift's Glibc module does not export
 * (it is built without _GNU_SOURCE and without <sys/epoll.h>). Header only: no code of our own,
 * just declarations of libc functions and prefixed inline wrappers (swift-nio's CNIOLinux
 * pattern). Used only by MiniAppSystem/Net. */
#ifndef CNETSHIMS_H
#define CNETSHIMS_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <pthread.h>

/* pthread_setname_np is GNU-only too: names the reactor thread for top -H, perf and /proc. */
extern int pthread_setname_np(pthread_t thread, const char *name);
static inline int cnet_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }

/* accept4(2) is declared by glibc only under _GNU_SOURCE. */
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);

static inline int cnet_accept4(int fd, int flags) { return accept4(fd, (struct sockaddr *)0, (socklen_t *)0, flags); }
static inline int cnet_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
    return epoll_wait(epfd, events, max, timeout);
}
static inline int cnet_epoll_ctl(int epfd, int op, int fd, unsigned int events, unsigned long long token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, op == EPOLL_CTL_DEL ? (struct epoll_event *)0 : &ev);
}
static inline unsigned long long cnet_epoll_event_token(const struct epoll_event *ev) { return ev->data.u64; }
static inline unsigned int cnet_epoll_event_events(const struct epoll_event *ev) { return ev->events; }
#endif
