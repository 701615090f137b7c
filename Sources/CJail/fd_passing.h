/* Sending one message with descriptors (SCM_RIGHTS) on a Unix socket: the spawner protocol's
 * every message (requests, replies, warm-jail notices and launches) goes through it. */
#ifndef CJAIL_FD_PASSING_H
#define CJAIL_FD_PASSING_H
#include <stddef.h>

#define CJAIL_MAX_PASSED_FDS 16

/* Sends `len` bytes of `data` with the `n` descriptors `fds` (n may be 0; at most
 * CJAIL_MAX_PASSED_FDS), retrying EINTR, never raising SIGPIPE. Returns 0, the errno of a
 * failed sendmsg, or EPROTO when it sent only part of `data` (SEQPACKET and small stream
 * messages are sent whole or not at all). */
int cjail_send_with_fds(int sock, const void *data, size_t len, const int *fds, int n);

#endif
