/* The spawner process: the one place that clones jailed workers.
 *
 * Why a separate process: clone(2) without CLONE_VM copies the caller's whole memory map, and
 * the worker's PID 1 (the reaper, which never execs) keeps that copy for its lifetime. Cloned
 * from the daemon, each worker would cost ~0.9 µs per daemon VMA at clone and again at exit
 * (the daemon maps ~50 shared libraries), every page the daemon writes afterwards would take a
 * copy-on-write fault with a TLB shootdown across its threads, and each live worker would pin a
 * snapshot of the daemon's heap (auth keys included) until it exits. Cloned from this small,
 * single-threaded process, a worker inherits a few hundred KiB that hold no secrets, and none of
 * the multi-threaded-fork hazards apply (a lock held by another thread at clone time).
 *
 * Protocol (SOCK_SEQPACKET, one request → one reply, see cjail.h):
 *     daemon → spawner: cjail_spawn_request + SCM_RIGHTS [blob memfd, stdin, stdout, stderr,
 *                       bridge, netns, trace] (the ones present, in that order)
 *     spawner:          map + check the blob (spec_blob.c), clone with CLONE_PARENT so the
 *                       worker is the daemon's child (its pidfd, waitid and SIGCHLD work there)
 *     spawner → daemon: cjail_spawn_reply + SCM_RIGHTS [pidfd, go, err, status?]
 * The daemon then runs the rest of the protocol itself (id maps, cgroup attach, "go", error
 * pipe). The spawner holds no state between requests and exits when the daemon closes the
 * socket or dies (PDEATHSIG). */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_IN_FDS CJAIL_SPAWN_FD_COUNT

struct request_fds {
    int fd[CJAIL_SPAWN_FD_COUNT]; /* by role, -1 when absent */
};

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

/* Receives one request; returns 1 (got one), 0 (peer closed), or -errno. */
static int receive(int sock, struct cjail_spawn_request *req, struct request_fds *rf) {
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_IN_FDS)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {req, sizeof *req};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n == 0) return 0;
    if (n < 0) return -errno;
    int got[MAX_IN_FDS], count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < k && count < MAX_IN_FDS; i++) memcpy(&got[count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    for (int r = 0; r < CJAIL_SPAWN_FD_COUNT; r++) rf->fd[r] = -1;
    int want = __builtin_popcount(req->fd_mask & ((1u << CJAIL_SPAWN_FD_COUNT) - 1));
    if ((size_t)n != sizeof *req || req->magic != CJAIL_SPAWN_MAGIC || (msg.msg_flags & MSG_CTRUNC) || count != want) {
        close_all(got, count);
        return -EPROTO;
    }
    for (int r = 0, i = 0; r < CJAIL_SPAWN_FD_COUNT; r++)
        if (req->fd_mask & (1u << r)) rf->fd[r] = got[i++];
    return 1;
}

static int reply(int sock, int32_t result, const struct cjail_child *c) {
    struct cjail_spawn_reply rep = {CJAIL_SPAWN_MAGIC, result, result == 0 ? c->pid : 0, 0};
    int fds[4], n = 0;
    if (result == 0) {
        fds[n++] = c->pidfd;
        fds[n++] = c->go_fd;
        fds[n++] = c->err_fd;
        if (c->status_fd >= 0) fds[n++] = c->status_fd;
        rep.fd_count = n;
    }
    union {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {&rep, sizeof rep};
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
    return w < 0 ? -errno : 0;
}

/* Maps the blob and the trace slots, clones. Returns 0 or -errno; fills *c on success. */
static int spawn(const struct cjail_spawn_request *req, const struct request_fds *rf, struct cjail_child *c) {
    int blob_fd = rf->fd[CJAIL_SPAWN_FD_BLOB];
    struct stat st;
    if (blob_fd < 0 || fstat(blob_fd, &st) < 0 || req->blob_len == 0 || (uint64_t)st.st_size < req->blob_len) return -EINVAL;
    size_t len = (size_t)req->blob_len;
    void *blob = mmap(NULL, len, PROT_READ, MAP_PRIVATE, blob_fd, 0);
    if (blob == MAP_FAILED) return -errno;
    struct cjail_spec spec;
    int e = cjail_spec_unpack(blob, len, &spec);
    struct cjail_spec *s = &spec;
    void *trace = MAP_FAILED;
    const size_t trace_len = sizeof(uint64_t) * CJAIL_STEP_COUNT;
    if (!e && rf->fd[CJAIL_SPAWN_FD_TRACE] >= 0) {
        trace = mmap(NULL, trace_len, PROT_READ | PROT_WRITE, MAP_SHARED, rf->fd[CJAIL_SPAWN_FD_TRACE], 0);
        if (trace != MAP_FAILED) s->trace = trace;
    }
    if (!e) {
        s->stdin_fd = rf->fd[CJAIL_SPAWN_FD_STDIN];
        s->stdout_fd = rf->fd[CJAIL_SPAWN_FD_STDOUT];
        s->stderr_fd = rf->fd[CJAIL_SPAWN_FD_STDERR];
        s->bridge_fd = rf->fd[CJAIL_SPAWN_FD_BRIDGE];
        s->netns_fd = rf->fd[CJAIL_SPAWN_FD_NETNS];
        s->clone_flags |= CLONE_PARENT;
        e = cjail_clone(s, c);
    }
    cjail_spec_release(s); /* zeroed, so a no-op, when unpack refused the blob */
    if (trace != MAP_FAILED) munmap(trace, trace_len);
    munmap(blob, len); /* the child has its own copy */
    return e;
}

int cjail_spawner_serve(int sock) {
    for (;;) {
        struct cjail_spawn_request req;
        struct request_fds rf;
        int r = receive(sock, &req, &rf);
        if (r == 0) return 0;
        if (r == -EPROTO) {
            if (reply(sock, -EPROTO, NULL) < 0) return -EPIPE;
            continue;
        }
        if (r < 0) return r;
        struct cjail_child c = {0, -1, -1, -1, -1};
        int e = spawn(&req, &rf, &c);
        close_all(rf.fd, CJAIL_SPAWN_FD_COUNT);
        int w = reply(sock, e, &c);
        int mine[4] = {c.pidfd, c.go_fd, c.err_fd, c.status_fd};
        if (e == 0) close_all(mine, 4); /* the daemon has its copies now */
        if (w < 0) return w;
    }
}
