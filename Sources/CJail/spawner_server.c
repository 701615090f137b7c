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
#include "fd_passing.h"
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_IN_FDS CJAIL_SPAWN_FD_COUNT

struct request_fds {
    int fd[CJAIL_SPAWN_FD_COUNT]; /* by role, -1 when absent */
};

/* Warm jails (spawner_warm.c). */
int spawner_warm_take(int sock, const struct cjail_spawn_request *req, const int *fds, const struct cjail_spec *spec,
                      uint64_t *trace, struct cjail_child *c, int *e, int32_t *step);
void spawner_warm_make(int sock, const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns);
void spawner_warm_discard(int sock);
int spawner_warm_missing(const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns);
int spawner_warm_pollfds(struct pollfd *out, int max);
void spawner_warm_drop_dead(int sock);
int spawner_write_id_maps(const struct cjail_spawn_request *req, pid_t pid);
int spawner_attach(const int *fds, pid_t pid);

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

/* Receives one request; returns 1 (got one), 0 (peer closed), or -errno. */
static int receive(int sock, struct cjail_spawn_request *req, struct request_fds *rf) {
    for (int r = 0; r < CJAIL_SPAWN_FD_COUNT; r++) rf->fd[r] = -1; /* also on every failure */
    int got[MAX_IN_FDS], count = 0;
    long n = cjail_recv_with_fds(sock, req, sizeof *req, 0, got, MAX_IN_FDS, &count);
    if (n == 0) return 0;
    if (n < 0) return (int)n;
    int want = __builtin_popcount(req->fd_mask & ((1u << CJAIL_SPAWN_FD_COUNT) - 1));
    if ((size_t)n != sizeof *req || req->magic != CJAIL_SPAWN_MAGIC || count != want) {
        close_all(got, count);
        return -EPROTO;
    }
    for (int r = 0, i = 0; r < CJAIL_SPAWN_FD_COUNT; r++)
        if (req->fd_mask & (1u << r)) rf->fd[r] = got[i++];
    return 1;
}

static int reply(int sock, int32_t result, int32_t step, const struct cjail_child *c, int warm) {
    struct cjail_spawn_reply rep = {CJAIL_SPAWN_MAGIC, result, step, c ? c->pid : 0, 0, warm};
    int fds[3], n = 0;
    if (c && c->pidfd >= 0) {
        fds[n++] = c->pidfd;
        fds[n++] = c->err_fd;
        if (c->status_fd >= 0) fds[n++] = c->status_fd;
        rep.fd_count = n;
    }
    return -cjail_send_with_fds(sock, &rep, sizeof rep, fds, n);
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
int spawner_write_id_maps(const struct cjail_spawn_request *req, pid_t pid) {
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

int spawner_attach(const int *fds, pid_t pid) {
    char text[24];
    int len = snprintf(text, sizeof text, "%d", (int)pid);
    for (int r = CJAIL_SPAWN_FD_PROCS; r < CJAIL_SPAWN_FD_PROCS + CJAIL_SPAWN_MAX_PROCS; r++) {
        if (fds[r] < 0) continue;
        ssize_t n;
        do { n = pwrite(fds[r], text, (size_t)len, 0); } while (n < 0 && errno == EINTR);
        if (n < 0) return -errno;
    }
    return 0;
}

/* After the clone: maps, cgroups, go. Returns 0 or -errno with *step set. On failure "go" is
 * never sent: closing the go pipe makes the child exit at its first step. */
static int start(const struct cjail_spawn_request *req, const struct request_fds *rf, struct cjail_child *c,
                 uint64_t *trace, int32_t *step) {
    int e = 0;
    if ((req->flags & CJAIL_SPAWN_IDMAP) && (e = spawner_write_id_maps(req, c->pid))) { *step = CJAIL_SPAWN_IDMAP_STEP; }
    else if ((e = spawner_attach(rf->fd, c->pid))) { *step = CJAIL_SPAWN_CGROUP; }
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

/* A request's spec, mapped and checked (the blob stays mapped while `spec` is used). */
struct loaded {
    void *blob;
    size_t len;
    struct cjail_spec spec;
    uint64_t *trace;
};

static int load(const struct cjail_spawn_request *req, const struct request_fds *rf, struct loaded *l) {
    *l = (struct loaded){MAP_FAILED, 0, {0}, NULL};
    int blob_fd = rf->fd[CJAIL_SPAWN_FD_BLOB];
    struct stat st;
    if (blob_fd < 0 || fstat(blob_fd, &st) < 0 || req->blob_len == 0 || (uint64_t)st.st_size < req->blob_len) return -EINVAL;
    /* Sealed, or refused: a memfd the sender can still truncate kills us with SIGBUS when a
     * page of our mapping goes away, and one it can still write changes the spec after
     * cjail_spec_unpack checked it. */
    if (!cjail_memfd_is_sealed(blob_fd)) return -EPERM;
    l->len = (size_t)req->blob_len;
    l->blob = mmap(NULL, l->len, PROT_READ, MAP_PRIVATE, blob_fd, 0);
    if (l->blob == MAP_FAILED) return -errno;
    int e = cjail_spec_unpack(l->blob, l->len, &l->spec);
    if (e) return e;
    if (rf->fd[CJAIL_SPAWN_FD_TRACE] >= 0) {
        void *t = mmap(NULL, sizeof(uint64_t) * CJAIL_TRACE_SLOTS, PROT_READ | PROT_WRITE, MAP_SHARED, rf->fd[CJAIL_SPAWN_FD_TRACE], 0);
        if (t != MAP_FAILED) l->trace = t;
    }
    l->spec.trace = l->trace;
    mark(l->trace, CJAIL_TRACE_SPAWNER_RECEIVED);
    return 0;
}

static void unload(struct loaded *l) {
    cjail_spec_release(&l->spec); /* zeroed, so a no-op, when unpack refused the blob */
    if (l->trace) munmap(l->trace, sizeof(uint64_t) * CJAIL_TRACE_SLOTS);
    if (l->blob != MAP_FAILED) munmap(l->blob, l->len); /* children have their own copies */
    l->blob = MAP_FAILED;
    l->trace = NULL;
}

/* A cold spawn: clone with the whole spec, start. Returns 0 or -errno with *step set; *c holds
 * the child's fds whenever one was cloned. */
static int spawn_cold(const struct cjail_spawn_request *req, const struct request_fds *rf, struct loaded *l,
                      struct cjail_child *c, int32_t *step) {
    struct cjail_spec *spec = &l->spec;
    spec->stdin_fd = rf->fd[CJAIL_SPAWN_FD_STDIN];
    spec->stdout_fd = rf->fd[CJAIL_SPAWN_FD_STDOUT];
    spec->stderr_fd = rf->fd[CJAIL_SPAWN_FD_STDERR];
    spec->bridge_fd = rf->fd[CJAIL_SPAWN_FD_BRIDGE];
    spec->netns_fd = rf->fd[CJAIL_SPAWN_FD_NETNS];
    uint64_t flags = spec->clone_flags;
    spec->clone_flags |= CLONE_PARENT;
    *step = CJAIL_SPAWN_CLONE;
    int e = cjail_clone(spec, c);
    spec->clone_flags = flags;
    mark(l->trace, CJAIL_TRACE_SPAWNER_CLONED);
    if (!e) e = start(req, rf, c, l->trace, step);
    return e;
}

/* The warm jail to make next: from the last launch that asked for one, once that launch's
 * program was exec'd (its error pipe reached EOF: `after` is the spawner's dup of the read
 * end). Made then, not at once: cloning it and running its phase A while the launch still sets
 * itself up would take the CPU that launch needs (on a machine with few cores). */
static struct {
    int pending;
    struct cjail_spawn_request req;
    struct loaded l;
    int netns;
    int after;
} next_warm = {0, {0}, {MAP_FAILED, 0, {0}, NULL}, 0, -1};

static void drop_pending(void) {
    if (!next_warm.pending) return;
    unload(&next_warm.l);
    if (next_warm.after >= 0) close(next_warm.after);
    next_warm.pending = 0;
    next_warm.after = -1;
}

/* Waits for a request on `sock`, making the pending warm jail when its launch has exec'd.
 * Returns 1 when a request is there to read, 0 at EOF (or error) on `sock`. */
static int wait_request(int sock) {
    for (;;) {
        struct pollfd p[2 + 8] = {{sock, POLLIN, 0}, {next_warm.pending ? next_warm.after : -1, POLLIN, 0}};
        int jails = spawner_warm_pollfds(p + 2, 8);
        int n = poll(p, (nfds_t)(2 + jails), -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return 0;
        for (int i = 0; i < jails; i++)
            if (p[2 + i].revents) { spawner_warm_drop_dead(sock); break; }
        if (p[1].revents) { /* exec'd (EOF) or failed (a record, or the child is gone) */
            /* Up to the pool's size, one after the other: each is cloned at nice 19. */
            while (spawner_warm_missing(&next_warm.req, &next_warm.l.spec, next_warm.netns) > 0) {
                int before = spawner_warm_missing(&next_warm.req, &next_warm.l.spec, next_warm.netns);
                spawner_warm_make(sock, &next_warm.req, &next_warm.l.spec, next_warm.netns);
                if (spawner_warm_missing(&next_warm.req, &next_warm.l.spec, next_warm.netns) == before) break; /* none made */
                struct pollfd q = {sock, POLLIN, 0};
                if (poll(&q, 1, 0) > 0) break; /* a launch is waiting: serve it first */
            }
            drop_pending();
        }
        if (p[0].revents & POLLIN) return 1;
        if (p[0].revents & (POLLHUP | POLLERR)) return 0;
    }
}

extern int cjail_spawner_main_socket;

int cjail_spawner_serve(int sock) {
    cjail_spawner_main_socket = sock;
    for (;;) {
        if (!wait_request(sock)) break;
        struct cjail_spawn_request req;
        struct request_fds rf;
        int r = receive(sock, &req, &rf);
        if (r == 0) break;
        if (r < 0 && r != -EPROTO) break;
        int out = rf.fd[CJAIL_SPAWN_FD_REPLY];
        if (r == -EPROTO || out < 0) {
            /* Nowhere to answer a malformed request but its reply socket, if it has one. */
            if (out >= 0) (void)reply(out, -EPROTO, CJAIL_SPAWN_REQUEST, NULL, 0);
            close_all(rf.fd, CJAIL_SPAWN_FD_COUNT);
            continue;
        }
        drop_pending(); /* a newer launch is the template now */
        struct cjail_child c = {0, -1, -1, -1, -1};
        int32_t step = CJAIL_SPAWN_REQUEST;
        struct loaded l;
        int e = load(&req, &rf, &l);
        /* "Taken" is load's CJAIL_TRACE_SPAWNER_RECEIVED mark in the trace memfd (the daemon
         * always sends one): a daemon whose reply socket reads EOF (we died) retries a request
         * we never took. The spec memfd itself is sealed against writes. */
        int warm = 0;
        if (!e && (req.flags & CJAIL_SPAWN_WARM)) {
            warm = spawner_warm_take(sock, &req, rf.fd, &l.spec, l.trace, &c, &e, &step);
        }
        if (!e && !warm) e = spawn_cold(&req, &rf, &l, &c, &step);
        if (!e) step = CJAIL_SPAWN_OK;
        int after = (!e && (req.flags & CJAIL_SPAWN_WARM) && c.err_fd >= 0) ? fcntl(c.err_fd, F_DUPFD_CLOEXEC, 10) : -1;
        (void)reply(out, e, step, &c, warm); /* a gone caller is not our failure */
        int netns = rf.fd[CJAIL_SPAWN_FD_NETNS] >= 0 || (l.spec.clone_flags & CLONE_NEWNET) != 0;
        close_all(rf.fd, CJAIL_SPAWN_FD_COUNT);
        int mine[4] = {c.pidfd, c.go_fd, c.err_fd, c.status_fd};
        close_all(mine, 4); /* the daemon has its copies now */
        if (after >= 0) { /* keep this launch's spec as the next warm jail's template */
            next_warm.pending = 1;
            next_warm.req = req;
            next_warm.l = l;
            next_warm.netns = netns;
            next_warm.after = after;
        } else {
            unload(&l);
        }
    }
    drop_pending();
    spawner_warm_discard(-1); /* the daemon is gone: nobody to notify */
    return 0;
}
