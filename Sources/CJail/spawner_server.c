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
 *                       bridge, netns, trace, cgroup.procs…] (the ones present, in that order)
 *     spawner:          map + check the blob (spec_blob.c), clone with CLONE_PARENT so the
 *                       worker is the daemon's child (its pidfd, waitid and SIGCHLD work there),
 *                       [rootless] write its id maps, write its pid into every cgroup.procs,
 *                       send "go": the child was in its cgroups before its first step
 *     spawner → daemon: cjail_spawn_reply + SCM_RIGHTS [pidfd, err, status?], on the reply
 *                       socket that came with the request
 * Doing the maps, the attach and "go" here saves the daemon a round trip: its caller sends the
 * request, and its event loop takes the reply (while the child sets itself up) and then the
 * error pipe's EOF (the exec). The spawner holds no state
 * between requests and exits when the daemon closes the socket or dies (PDEATHSIG). */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
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

static int reply(int sock, int32_t result, int32_t step, const struct cjail_child *c) {
    struct cjail_spawn_reply rep = {CJAIL_SPAWN_MAGIC, result, step, c ? c->pid : 0, 0, 0};
    int fds[3], n = 0;
    if (c && c->pidfd >= 0) {
        fds[n++] = c->pidfd;
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

static void mark(uint64_t *trace, int slot) {
    if (!trace) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    trace[slot] = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = n < 0 ? -errno : 0;
    close(fd);
    return e;
}

/* Rootless mode: an unprivileged writer must deny setgroups before it may write gid_map
 * (CVE-2014-8989: dropping supplementary groups could grant access to "negative" ACL files);
 * the spawner has the daemon's uid, which is what the single-id maps name. */
static int write_id_maps(const struct cjail_spawn_request *req, pid_t pid) {
    char path[64], line[64];
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
    int e = write_text(path, "deny");
    if (e) return e;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    snprintf(line, sizeof line, "%u %u 1\n", req->inside_gid, req->outside_gid);
    if ((e = write_text(path, line))) return e;
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    snprintf(line, sizeof line, "%u %u 1\n", req->inside_uid, req->outside_uid);
    return write_text(path, line);
}

static int attach(const struct request_fds *rf, pid_t pid) {
    char text[24];
    int len = snprintf(text, sizeof text, "%d", (int)pid);
    for (int r = CJAIL_SPAWN_FD_PROCS; r < CJAIL_SPAWN_FD_PROCS + CJAIL_SPAWN_MAX_PROCS; r++) {
        if (rf->fd[r] < 0) continue;
        ssize_t n;
        do { n = pwrite(rf->fd[r], text, (size_t)len, 0); } while (n < 0 && errno == EINTR);
        if (n < 0) return -errno;
    }
    return 0;
}

/* After the clone: maps, cgroups, go. Returns 0 or -errno with *step set. On failure "go" is
 * never sent: closing the go pipe makes the child exit at its first step. */
static int start(const struct cjail_spawn_request *req, const struct request_fds *rf, struct cjail_child *c,
                 uint64_t *trace, int32_t *step) {
    int e = 0;
    if ((req->flags & CJAIL_SPAWN_IDMAP) && (e = write_id_maps(req, c->pid))) { *step = CJAIL_SPAWN_IDMAP_STEP; }
    else if ((e = attach(rf, c->pid))) { *step = CJAIL_SPAWN_CGROUP; }
    mark(trace, CJAIL_TRACE_SPAWNER_ATTACHED);
    if (e) {
        close(c->go_fd);
        c->go_fd = -1;
        return e;
    }
    if ((e = cjail_go(c))) *step = CJAIL_SPAWN_GO;
    mark(trace, CJAIL_TRACE_SPAWNER_GO);
    return e;
}

/* Maps the blob and the trace slots, clones, starts the child. Returns 0 or -errno with *step
 * set; *c holds the child's fds whenever one was cloned. */
static int spawn(const struct cjail_spawn_request *req, const struct request_fds *rf, struct cjail_child *c, int32_t *step) {
    *step = CJAIL_SPAWN_REQUEST;
    int blob_fd = rf->fd[CJAIL_SPAWN_FD_BLOB];
    struct stat st;
    if (blob_fd < 0 || fstat(blob_fd, &st) < 0 || req->blob_len == 0 || (uint64_t)st.st_size < req->blob_len) return -EINVAL;
    size_t len = (size_t)req->blob_len;
    void *blob = mmap(NULL, len, PROT_READ, MAP_PRIVATE, blob_fd, 0);
    if (blob == MAP_FAILED) return -errno;
    struct cjail_spec spec;
    int e = cjail_spec_unpack(blob, len, &spec);
    uint64_t *trace = NULL;
    const size_t trace_len = sizeof(uint64_t) * CJAIL_TRACE_SLOTS;
    if (!e && rf->fd[CJAIL_SPAWN_FD_TRACE] >= 0) {
        void *t = mmap(NULL, trace_len, PROT_READ | PROT_WRITE, MAP_SHARED, rf->fd[CJAIL_SPAWN_FD_TRACE], 0);
        if (t != MAP_FAILED) trace = t;
        spec.trace = trace;
        mark(trace, CJAIL_TRACE_SPAWNER_RECEIVED);
    }
    if (!e) {
        spec.stdin_fd = rf->fd[CJAIL_SPAWN_FD_STDIN];
        spec.stdout_fd = rf->fd[CJAIL_SPAWN_FD_STDOUT];
        spec.stderr_fd = rf->fd[CJAIL_SPAWN_FD_STDERR];
        spec.bridge_fd = rf->fd[CJAIL_SPAWN_FD_BRIDGE];
        spec.netns_fd = rf->fd[CJAIL_SPAWN_FD_NETNS];
        spec.clone_flags |= CLONE_PARENT;
        *step = CJAIL_SPAWN_CLONE;
        e = cjail_clone(&spec, c);
        mark(trace, CJAIL_TRACE_SPAWNER_CLONED);
        if (!e) e = start(req, rf, c, trace, step);
    }
    cjail_spec_release(&spec); /* zeroed, so a no-op, when unpack refused the blob */
    if (trace) munmap(trace, trace_len);
    munmap(blob, len); /* the child has its own copy */
    if (!e) *step = CJAIL_SPAWN_OK;
    return e;
}

int cjail_spawner_serve(int sock) {
    for (;;) {
        struct cjail_spawn_request req;
        struct request_fds rf;
        int r = receive(sock, &req, &rf);
        if (r == 0) return 0;
        if (r < 0 && r != -EPROTO) return r;
        int out = rf.fd[CJAIL_SPAWN_FD_REPLY];
        if (r == -EPROTO || out < 0) {
            /* Nowhere to answer a malformed request but its reply socket, if it has one. */
            if (out >= 0) (void)reply(out, -EPROTO, CJAIL_SPAWN_REQUEST, NULL);
            close_all(rf.fd, CJAIL_SPAWN_FD_COUNT);
            continue;
        }
        struct cjail_child c = {0, -1, -1, -1, -1};
        int32_t step = CJAIL_SPAWN_OK;
        int e = spawn(&req, &rf, &c, &step);
        (void)reply(out, e, step, &c); /* a gone caller is not our failure */
        close_all(rf.fd, CJAIL_SPAWN_FD_COUNT);
        int mine[4] = {c.pidfd, c.go_fd, c.err_fd, c.status_fd};
        close_all(mine, 4); /* the daemon has its copies now */
    }
}
