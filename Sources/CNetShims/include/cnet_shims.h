/* CNetShims: the Linux calls the reactor needs that Swift's Glibc module does not export
 * (epoll, eventfd, accept4, SO_PEEK_OFF, pthread_setname_np; Glibc is built without
 * <sys/epoll.h> and without _GNU_SOURCE). Prefixed wrappers, swift-nio's CNIOLinux pattern.
 *
 * This header deliberately includes no system header: anything it included would be copied
 * into this module and shadow the Glibc module's declarations (mode_t, …) for Swift. The
 * system headers are included by shims.c only. */
#ifndef CNET_SHIMS_H
#define CNET_SHIMS_H

/* epoll event bits (Linux ABI, identical on every architecture). */
#define CNET_EPOLLIN 0x001u
#define CNET_EPOLLOUT 0x004u
#define CNET_EPOLLERR 0x008u
#define CNET_EPOLLHUP 0x010u
#define CNET_EPOLLRDHUP 0x2000u

/* epoll_create1(EPOLL_CLOEXEC); -1 and errno on failure. */
int cnet_epoll_create(void);
/* epoll_ctl ADD/MOD/DEL (op 1/3/2) with `token` as the event's data. */
int cnet_epoll_add(int epfd, int fd, unsigned int events, unsigned long long token);
int cnet_epoll_mod(int epfd, int fd, unsigned int events, unsigned long long token);
int cnet_epoll_del(int epfd, int fd);

/* An opaque array of `count` struct epoll_event (its layout differs per architecture). */
void *cnet_epoll_events_alloc(int count);
void cnet_epoll_events_free(void *events);
/* epoll_wait into such an array. */
int cnet_epoll_wait(int epfd, void *events, int count, int timeout_ms);
unsigned long long cnet_epoll_event_token(const void *events, int index);
unsigned int cnet_epoll_event_mask(const void *events, int index);

/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). */
int cnet_eventfd(void);
/* accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK). */
int cnet_accept4(int fd);
/* recv(fd, buf, len, MSG_PEEK). */
long cnet_recv_peek(int fd, void *buf, unsigned long len);
/* recvmsg(fd, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) of up to `len` bytes, with room for `max_fds`
 * SCM_RIGHTS descriptors: the ones received are stored in `fds` and their count in `*nfds`.
 * Descriptors beyond `max_fds` are closed by the kernel (MSG_CTRUNC). Returns the byte count. */
long cnet_recv_fds(int fd, void *buf, unsigned long len, int *fds, int max_fds, int *nfds);
/* sendmsg(fd, MSG_NOSIGNAL) of `len` bytes with one SCM_RIGHTS descriptor `passed` attached. */
long cnet_send_fd(int fd, const void *buf, unsigned long len, int passed);
/* Names the calling thread (15 characters at most). */
int cnet_set_thread_name(const char *name);
#endif
