/* One message with descriptors (SCM_RIGHTS) on a Unix socket, sent or received: every message
 * of the spawner protocol (requests, replies, warm-jail notices and launches) goes through these. */
#ifndef CJAIL_FD_PASSING_H
#define CJAIL_FD_PASSING_H
#include <stddef.h>

#define CJAIL_MAX_PASSED_FDS 16

/* Sends `len` bytes of `data` with the `n` descriptors `fds` (n may be 0; at most
 * CJAIL_MAX_PASSED_FDS), retrying EINTR, never raising SIGPIPE. Returns 0, the errno of a
 * failed sendmsg, or EPROTO when it sent only part of `data` (SEQPACKET and small stream
 * messages are sent whole or not at all). */
int cjail_send_with_fds(int sock, const void *data, size_t len, const int *fds, int n);

/* Receives one message of at most `len` bytes into `data` with up to `max` descriptors
 * (at most CJAIL_MAX_PASSED_FDS; MSG_CMSG_CLOEXEC, `flags` added, e.g. MSG_DONTWAIT; EINTR
 * retried). Returns the byte count (0: the peer closed) or -errno; `*n_fds` descriptors are
 * then in `fds`, the caller's. More than `max` descriptors, or a truncated control buffer:
 * every descriptor that arrived is closed and the result is -EPROTO (none is ever leaked). */
long cjail_recv_with_fds(int sock, void *data, size_t len, int flags, int *fds, int max, int *n_fds);

#endif
