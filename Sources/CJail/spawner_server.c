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
 *     starter → spawner: cjail_template_request (registered once, before any launch), and
 *                       cjail_control_request LOCK; replies on the request's own socket
 *     daemon → spawner: cjail_spawn_request + SCM_RIGHTS [blob memfd, stdin, stdout, stderr,
 *                       bridge, netns, trace, cgroup.procs…] (the ones present, in that order)
 *     spawner:          copy + check the blob (spec_blob.c), check it against its template
 *                       (spawner_check.c; refused: CJAIL_SPAWN_REFUSED, nothing cloned), open
 *                       /app and /data itself (spawner_template.c), clone with CLONE_PARENT so the
 *                       worker is the daemon's child (its pidfd, waitid and SIGCHLD work there),
 *                       [rootless] write its id maps, write its pid into every cgroup.procs,
 *                       send "go": the child was in its cgroups before its first step (a warm
 *                       jail waiting in a pooled cgroup is in its cgroups already: nothing is
 *                       written, spawner_warm.c)
 *     spawner → daemon: cjail_spawn_reply + SCM_RIGHTS [pidfd, err, status?], on the reply
 *                       socket that came with the request
 * Doing the maps, the attach and "go" here saves the daemon a round trip: its caller sends the
 * request, and its event loop takes the reply (while the child sets itself up) and then the
 * error pipe's EOF (the exec). Between requests the spawner holds its templates, the pidfds of
 * the workers it cloned (SIGNAL requests reach only those) and its warm jails; it exits when the
 * daemon closes the socket or dies (PDEATHSIG). */
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
#include <sys/ioctl.h>
#include <linux/nsfs.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <sys/syscall.h>

struct request_fds {
    int fd[CJAIL_SPAWN_FD_COUNT]; /* by role, -1 when absent */
};

/* Warm jails (spawner_warm.c). */
int spawner_warm_take(int sock, const struct cjail_spawn_request *req, int *fds, const struct cjail_spec *spec,
                      size_t blob_len, const struct cjail_check *ck, const int *trees,
                      uint64_t *trace, struct cjail_child *c, int *e, int32_t *step, char jail_cgroup[CJAIL_NAME_MAX]);
int spawner_warm_make(int sock, const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns, const char *lent);
void spawner_warm_return_cgroup(int sock, const char *name);
int spawner_warm_replace_bare(int sock, const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns, const char *lent);
void spawner_warm_discard(int sock);
int spawner_warm_missing(const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns);
int spawner_warm_pollfds(struct pollfd *out, int max);
void spawner_warm_drop_dead(int sock);
int spawner_write_id_maps(const struct cjail_spawn_request *req, pid_t pid);
int spawner_attach(const int *fds, pid_t pid);
/* The pool of network namespaces (spawner_netns.c). */
int spawner_netns_take(void);
int spawner_netns_wanted(void);
void spawner_netns_refill(void);

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

/* Every message the spawner takes. Received into a buffer larger than the largest: a
 * SOCK_SEQPACKET message longer than the buffer is cut silently (MSG_TRUNC), so an oversized
 * message must not fit to be told from a valid one. */
union message {
    struct cjail_spawn_request spawn;
    struct cjail_template_request tmpl;
    struct cjail_control_request ctl;
    char bytes[512];
};

/* Spreads the `count` descriptors of a message over roles by `mask` (the first `roles` bits):
 * 0, or -EPROTO (every descriptor closed) when they do not match. */
static int by_role(uint32_t mask, int roles, int *got, int count, int *out) {
    for (int r = 0; r < roles; r++) out[r] = -1;
    if ((mask >> roles) != 0 || __builtin_popcount(mask) != count) {
        close_all(got, count);
        return -EPROTO;
    }
    for (int r = 0, i = 0; r < roles; r++)
        if (mask & (1u << r)) out[r] = got[i++];
    return 0;
}

static int reply(int sock, int32_t result, int32_t step, const struct cjail_child *c, int exit_fd, int warm, const struct cjail_check *ck,
                 const char cgroup[CJAIL_NAME_MAX]) {
    struct cjail_spawn_reply rep = {CJAIL_SPAWN_MAGIC, result, step, c ? c->pid : 0, 0, warm, ck ? ck->refused : 0, ck ? ck->index : -1, 0, {0}};
    if (!result) memcpy(rep.cgroup, cgroup, sizeof rep.cgroup);
    int fds[4], n = 0;
    if (c && c->pidfd >= 0) {
        fds[n++] = c->pidfd;
        fds[n++] = c->err_fd;
        rep.fd_roles = CJAIL_REPLY_FD_PIDFD | CJAIL_REPLY_FD_ERR;
        if (c->status_fd >= 0) { fds[n++] = c->status_fd; rep.fd_roles |= CJAIL_REPLY_FD_STATUS; }
        if (exit_fd >= 0) { fds[n++] = exit_fd; rep.fd_roles |= CJAIL_REPLY_FD_EXIT; }
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

/* A request's spec: its sealed blob mapped, unpacked (the strings point into the mapping). */
struct loaded {
    void *blob;
    size_t len;
    struct cjail_spec spec;
    uint64_t *trace;
};

/* The sealed spec memfd mapped (spawner_template.c): 0 or -errno (EPERM: not sealed). */
int spawner_map_blob(int fd, uint64_t len, void **out);
void spawner_unmap_blob(void *blob, uint64_t len);

/* A trace memfd whose size is sealed at least as large as the slots. */
static int trace_usable(int fd) {
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(uint64_t) * CJAIL_TRACE_SLOTS) return 0;
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & F_SEAL_SHRINK);
}

static int load(const struct cjail_spawn_request *req, const struct request_fds *rf, struct loaded *l) {
    *l = (struct loaded){NULL, 0, {0}, NULL};
    int e = spawner_map_blob(rf->fd[CJAIL_SPAWN_FD_BLOB], req->blob_len, &l->blob);
    if (e) return e;
    l->len = (size_t)req->blob_len;
    e = cjail_spec_unpack(l->blob, l->len, &l->spec);
    if (e) return e;
    if (trace_usable(rf->fd[CJAIL_SPAWN_FD_TRACE])) {
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
    spawner_unmap_blob(l->blob, l->len); /* children have their own copies */
    l->blob = NULL;
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
    /* No namespace passed (a dropped daemon makes none): one of ours, made ahead, instead of
     * one made in the clone (spawner_netns.c). */
    int pooled = (spec->netns_fd < 0 && (flags & CLONE_NEWNET)) ? spawner_netns_take() : -1;
    if (pooled >= 0) {
        spec->netns_fd = pooled;
        spec->clone_flags &= ~(uint64_t)CLONE_NEWNET;
    }
    if (!cjail_spawner_own_children) spec->clone_flags |= CLONE_PARENT;
    *step = CJAIL_SPAWN_CLONE;
    int e = cjail_clone(spec, c);
    spec->clone_flags = flags;
    spec->netns_fd = rf->fd[CJAIL_SPAWN_FD_NETNS];
    if (pooled >= 0) close(pooled); /* the child has its copy */
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
    char lent[2][CJAIL_NAME_MAX]; /* cgroups lent for its warm jails (pooled cgroups), not used yet */
} next_warm = {0, {0}, {NULL, 0, {0}, NULL}, 0, -1, {{0}, {0}}};

extern int cjail_spawner_main_socket;

static void drop_pending(void) {
    for (int i = 0; i < 2; i++) { /* back to the daemon, unused */
        spawner_warm_return_cgroup(cjail_spawner_main_socket, next_warm.lent[i]);
        next_warm.lent[i][0] = 0;
    }
    if (!next_warm.pending) return;
    unload(&next_warm.l);
    if (next_warm.after >= 0) close(next_warm.after);
    next_warm.pending = 0;
    next_warm.after = -1;
}

int cjail_spawner_own_children;

/* A dup of the error pipe of the last cold launch that needed a network namespace while the
 * pool was short: the pool is filled once that launch has exec'd (EOF), never during it. */
static int netns_after = -1;

/* A spawner service's listening socket while it serves a daemon (-1 otherwise): a second
 * connection meanwhile is accepted and closed at once (one daemon at a time). */
static int session_listener = -1;

void spawner_reap_workers(void);
int spawner_worker_pollfds(struct pollfd *out, int max);
size_t spawner_worker_count(void);

/* The warm jail of the pending launch, up to the pool's size, once that launch has exec'd (or
 * failed), one after the other: each is cloned at nice 19. */
static void refill_warm(int sock) {
    while (spawner_warm_missing(&next_warm.req, &next_warm.l.spec, next_warm.netns) > 0) {
        int before = spawner_warm_missing(&next_warm.req, &next_warm.l.spec, next_warm.netns);
        char *lent = next_warm.lent[0][0] ? next_warm.lent[0] : next_warm.lent[1];
        if (spawner_warm_make(sock, &next_warm.req, &next_warm.l.spec, next_warm.netns, lent)) lent[0] = 0;
        if (spawner_warm_missing(&next_warm.req, &next_warm.l.spec, next_warm.netns) == before) break; /* none made */
        struct pollfd q = {sock, POLLIN, 0};
        if (poll(&q, 1, 0) > 0) { drop_pending(); return; } /* a launch is waiting: serve it first */
    }
    for (int i = 0; i < 2; i++) { /* a cgroup still lent: for a jail of the key that has none */
        struct pollfd q = {sock, POLLIN, 0};
        if (poll(&q, 1, 0) > 0) break;
        if (spawner_warm_replace_bare(sock, &next_warm.req, &next_warm.l.spec, next_warm.netns, next_warm.lent[i])) next_warm.lent[i][0] = 0;
    }
    drop_pending();
}

/* Waits for a request on `sock`, making the pending warm jail when its launch has exec'd, and
 * (a spawner service) reaping the workers that exited and turning away other connections.
 * Returns 1 when a request is there to read, 0 at EOF (or error) on `sock`. */
static int wait_request(int sock) {
    struct pollfd *p = NULL;
    size_t cap = 0;
    int result = 0;
    for (;;) {
        size_t want = 4 + 8 + spawner_worker_count();
        if (want > cap) {
            struct pollfd *q = realloc(p, want * sizeof *q);
            if (!q) break;
            p = q;
            cap = want;
        }
        p[0] = (struct pollfd){sock, POLLIN, 0};
        p[1] = (struct pollfd){next_warm.pending ? next_warm.after : -1, POLLIN, 0};
        p[2] = (struct pollfd){session_listener, POLLIN, 0};
        p[3] = (struct pollfd){netns_after, POLLIN, 0};
        int jails = spawner_warm_pollfds(p + 4, 8);
        int workers = spawner_worker_pollfds(p + 4 + jails, (int)(cap - 4 - (size_t)jails));
        int n = poll(p, (nfds_t)(4 + jails + workers), -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        for (int i = 0; i < jails; i++)
            if (p[4 + i].revents) { spawner_warm_drop_dead(sock); break; }
        for (int i = 0; i < workers; i++)
            if (p[4 + jails + i].revents) { spawner_reap_workers(); break; }
        if (p[3].revents) { /* exec'd (EOF) or failed: fill the pool now */
            close(netns_after);
            netns_after = -1;
            spawner_netns_refill();
        }
        if (p[2].revents) { /* another daemon, or anyone: one connection at a time */
            int other = accept4(session_listener, NULL, NULL, SOCK_CLOEXEC);
            if (other >= 0) close(other);
        }
        if (p[1].revents) refill_warm(sock); /* exec'd (EOF) or failed (a record, or the child is gone) */
        if (p[0].revents & POLLIN) { result = 1; break; }
        if (p[0].revents & (POLLHUP | POLLERR)) break;
    }
    free(p);
    return result;
}

/* The template a launch must match (spawner_template.c). */
struct template;
const struct template *spawner_template(uint32_t id);
const struct cjail_spec *spawner_template_spec(const struct template *t);
const struct cjail_template_request *spawner_template_request(const struct template *t);
int spawner_resolve(const struct template *t, struct cjail_spec *spec, const struct cjail_check *ck, int trees[CJAIL_MAX_TREES], int32_t *index);
int spawner_register(const struct cjail_template_request *req, const int *fds);
int spawner_control(const struct cjail_control_request *req, int extra_fd);
void spawner_kill_workers(void);
int spawner_open_procs(const struct template *t, const char name[CJAIL_NAME_MAX], int *procs);
int spawner_template_cgroup_count(const struct template *t);
int spawner_worker_add(pid_t pid, int pidfd, int exit_fd);
void spawner_reap_workers(void);
int spawner_worker_pollfds(struct pollfd *out, int max);
size_t spawner_worker_count(void);
void spawner_lock_templates(void);

/* A pooled network namespace: a network namespace, and not the spawner's own (the host's):
 * joining that would give the worker the host's network. */
static int foreign_netns(int fd) {
    struct stat a, b;
    if (fd < 0) return 1;
    if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) return 0;
    if (fstat(fd, &a) < 0 || stat("/proc/self/ns/net", &b) < 0) return 0;
    return a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

/* A CJAIL_SPAWN_WARM_CGROUP request: a warm one, its cgroups plain names (a spare naming the
 * launch's own cgroup would put two processes in one), the template has cgroup directories, no
 * cgroup.procs descriptor came with it. 0 or -EPERM. */
static int pooled_cgroups_valid(const struct template *t, const struct cjail_spawn_request *req, const struct request_fds *rf) {
    if (!(req->flags & CJAIL_SPAWN_WARM) || !cjail_name_valid(req->cgroup) || spawner_template_cgroup_count(t) == 0) return -EPERM;
    if (req->spare_cgroup[0] && (!cjail_name_valid(req->spare_cgroup) || strcmp(req->spare_cgroup, req->cgroup) == 0)) return -EPERM;
    for (int r = CJAIL_SPAWN_FD_PROCS; r < CJAIL_SPAWN_FD_PROCS + CJAIL_SPAWN_MAX_PROCS; r++)
        if (rf->fd[r] >= 0) return -EPERM;
    return 0;
}

int spawner_request_procs(const struct cjail_spawn_request *req, int *fds) {
    if (!(req->flags & CJAIL_SPAWN_WARM_CGROUP) || fds[CJAIL_SPAWN_FD_PROCS] >= 0) return 0;
    const struct template *t = spawner_template(req->template_id);
    return t ? spawner_open_procs(t, req->cgroup, fds + CJAIL_SPAWN_FD_PROCS) : -EPERM;
}

int spawner_lent_procs(const struct cjail_spawn_request *req, const char name[CJAIL_NAME_MAX], int *procs) {
    const struct template *t = spawner_template(req->template_id);
    return t ? spawner_open_procs(t, name, procs) : -EPERM;
}

/* Checks a loaded launch against its template and resolves its program directories. 0, or
 * -errno with *step and *ck saying why. */
static int admit(const struct cjail_spawn_request *req, struct request_fds *rf, struct loaded *l,
                 struct cjail_check *ck, int trees[CJAIL_MAX_TREES], int32_t *step) {
    for (int k = 0; k < CJAIL_MAX_TREES; k++) trees[k] = -1;
    memset(ck, 0, sizeof *ck);
    ck->index = -1;
    *step = CJAIL_SPAWN_REFUSED;
    const struct template *t = spawner_template(req->template_id);
    if (!t) { ck->refused = CJAIL_REFUSE_TEMPLATE; return -EPERM; }
    int netns = rf->fd[CJAIL_SPAWN_FD_NETNS];
    if (!foreign_netns(netns)) { ck->refused = CJAIL_REFUSE_NAMESPACES; return -EPERM; }
    int e = cjail_template_check(spawner_template_spec(t), spawner_template_request(t), req, &l->spec, netns >= 0, ck);
    if (e) return e;
    if (req->flags & CJAIL_SPAWN_WARM_CGROUP) {
        /* Pooled cgroups: opened only if the launch needs its own (spawner_request_procs). */
        if ((e = pooled_cgroups_valid(t, req, rf))) { ck->refused = CJAIL_REFUSE_CGROUP; return e; }
    } else if (req->cgroup[0] && (e = spawner_open_procs(t, req->cgroup, rf->fd + CJAIL_SPAWN_FD_PROCS))) {
        ck->refused = CJAIL_REFUSE_CGROUP;
        return e;
    }
    e = spawner_resolve(t, &l->spec, ck, trees, &ck->index);
    if (e) {
        ck->refused = CJAIL_REFUSE_SOURCE;
        for (int k = 0; k < CJAIL_MAX_TREES; k++)
            if (trees[k] >= 0) close(trees[k]);
        return e;
    }
    ck->index = -1;
    return 0;
}

/* After a spawn: remembers a started worker (SIGNAL reaches only those), and when it is our own
 * child (a spawner service) opens its exit channel, whose read end is returned for the reply (-1
 * otherwise). A child of ours whose spawn failed, or that cannot be remembered, is killed and
 * reaped here: nobody else could reap it. */
static int keep_worker(struct cjail_child *c, int *e, int32_t *step) {
    int p[2] = {-1, -1};
    /* A socket, not a pipe: the record is sent with MSG_NOSIGNAL, so a daemon that closed its
     * end cannot kill us with SIGPIPE (which workers must inherit as SIG_DFL, not ignored). */
    if (!*e && cjail_spawner_own_children && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) *e = -errno;
    if (p[1] >= 0) shutdown(p[1], SHUT_RD);
    if (!*e && (*e = spawner_worker_add(c->pid, c->pidfd, p[1])) == 0) return p[0];
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
    if (*step == CJAIL_SPAWN_OK) *step = CJAIL_SPAWN_CLONE;
    if (c->pidfd >= 0 && cjail_spawner_own_children) {
        int32_t code, status;
        (void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
        while (cjail_waitid_pidfd(c->pidfd, WEXITED, &code, &status) < 0 && errno == EINTR) {}
    }
    return -1;
}

/* After a successful CJAIL_SPAWN_WARM_CGROUP launch: the cgroups the daemon lent (its spare, and
 * its own cgroup when the launch ran in its warm jail's), kept for the warm jails made once it
 * exec'd (`pending`), else given back at once. */
static void lend(const struct cjail_spawn_request *req, int e, const char *jail_cgroup, int pending) {
    if (e || !(req->flags & CJAIL_SPAWN_WARM_CGROUP)) return;
    const char *names[2] = {jail_cgroup[0] ? req->cgroup : "", req->spare_cgroup};
    for (int i = 0; i < 2; i++) {
        if (pending) {
            size_t n = strnlen(names[i], CJAIL_NAME_MAX - 1); /* names[i] may be a short literal */
            memcpy(next_warm.lent[i], names[i], n);
            next_warm.lent[i][n] = 0;
        } else {
            spawner_warm_return_cgroup(cjail_spawner_main_socket, names[i]);
        }
    }
}

/* One spawn request: answered on its own reply socket. */
static void serve_spawn(int sock, const struct cjail_spawn_request *req, struct request_fds *rf) {
    int out = rf->fd[CJAIL_SPAWN_FD_REPLY];
    if (out < 0) { /* nowhere to answer */
        close_all(rf->fd, CJAIL_SPAWN_FD_COUNT);
        return;
    }
    drop_pending(); /* a newer launch is the template now */
    struct cjail_child c = {0, -1, -1, -1, -1};
    int32_t step = CJAIL_SPAWN_REQUEST;
    struct cjail_check ck = {0};
    int trees[CJAIL_MAX_TREES] = {-1, -1, -1, -1};
    struct loaded l;
    int e = load(req, rf, &l);
    /* "Taken" is load's CJAIL_TRACE_SPAWNER_RECEIVED mark in the trace memfd (the daemon
     * always sends one, its size sealed): a daemon whose reply socket reads EOF (we died)
     * retries a request we never took. */
    if (!e) e = admit(req, rf, &l, &ck, trees, &step);
    int warm = 0;
    char jail_cgroup[CJAIL_NAME_MAX] = {0};
    if (!e && (req->flags & CJAIL_SPAWN_WARM))
        warm = spawner_warm_take(sock, req, rf->fd, &l.spec, l.len, &ck, trees, l.trace, &c, &e, &step, jail_cgroup);
    if (!e && !warm && (e = spawner_request_procs(req, rf->fd))) step = CJAIL_SPAWN_CGROUP;
    if (!e && !warm) e = spawn_cold(req, rf, &l, &c, &step);
    for (int k = 0; k < CJAIL_MAX_TREES; k++)
        if (trees[k] >= 0) close(trees[k]); /* the child has its copy (or the warm jail its own) */
    if (!e) step = CJAIL_SPAWN_OK;
    int exit_fd = keep_worker(&c, &e, &step);
    int after = (!e && (req->flags & CJAIL_SPAWN_WARM) && c.err_fd >= 0) ? fcntl(c.err_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (!e && !warm && netns_after < 0 && rf->fd[CJAIL_SPAWN_FD_NETNS] < 0 && (l.spec.clone_flags & CLONE_NEWNET) && spawner_netns_wanted())
        netns_after = fcntl(c.err_fd, F_DUPFD_CLOEXEC, 10);
    if (e) jail_cgroup[0] = 0;
    (void)reply(out, e, step, &c, exit_fd, warm, step == CJAIL_SPAWN_REFUSED ? &ck : NULL, jail_cgroup); /* a gone caller is not our failure */
    lend(req, e, jail_cgroup, after >= 0);
    if (exit_fd >= 0) close(exit_fd);
    int netns = rf->fd[CJAIL_SPAWN_FD_NETNS] >= 0 || (l.spec.clone_flags & CLONE_NEWNET) != 0;
    close_all(rf->fd, CJAIL_SPAWN_FD_COUNT);
    int mine[4] = {c.pidfd, c.go_fd, c.err_fd, c.status_fd};
    close_all(mine, 4); /* the daemon has its copies now */
    if (after >= 0) { /* keep this launch's spec as the next warm jail's template */
        next_warm.pending = 1;
        next_warm.req = *req;
        next_warm.l = l;
        next_warm.netns = netns;
        next_warm.after = after;
    } else {
        unload(&l);
    }
}

static void answer(int fd, int32_t result) {
    struct cjail_control_reply rep = {CJAIL_CONTROL_MAGIC, result};
    (void)cjail_send_with_fds(fd, &rep, sizeof rep, NULL, 0);
}

/* One message of any kind. A malformed one (unknown magic, wrong size: truncated or
 * oversized, descriptors not matching its mask) is dropped: its descriptors are closed, so its
 * sender's reply socket reads EOF; the spawner goes on serving. */
static void serve_one(int sock, union message *m, long n, int *got, int count) {
    if ((size_t)n == sizeof m->spawn && m->spawn.magic == CJAIL_SPAWN_MAGIC) {
        struct request_fds rf;
        if (by_role(m->spawn.fd_mask, CJAIL_SPAWN_FD_COUNT, got, count, rf.fd) == 0) serve_spawn(sock, &m->spawn, &rf);
        return;
    }
    if ((size_t)n == sizeof m->tmpl && m->tmpl.magic == CJAIL_TEMPLATE_MAGIC) {
        int fds[CJAIL_TEMPLATE_FD_COUNT];
        if (by_role(m->tmpl.fd_mask, CJAIL_TEMPLATE_FD_COUNT, got, count, fds) != 0) return;
        if (fds[CJAIL_TEMPLATE_FD_REPLY] >= 0) answer(fds[CJAIL_TEMPLATE_FD_REPLY], spawner_register(&m->tmpl, fds));
        close_all(fds, CJAIL_TEMPLATE_FD_COUNT);
        return;
    }
    if ((size_t)n == sizeof m->ctl && m->ctl.magic == CJAIL_CONTROL_MAGIC && (count == 1 || count == 2)) {
        /* The second descriptor (MOUNT_VOLUME's image) is the request's own: any other kind
         * that brings one is refused. */
        answer(got[0], spawner_control(&m->ctl, count == 2 ? got[1] : -1));
        close_all(got, count);
        return;
    }
    close_all(got, count);
}

/* recvmsg reads 0 both at EOF and for an empty SEQPACKET message. */
static int hung_up(int sock) {
    struct pollfd p = {sock, POLLIN | POLLRDHUP, 0};
    return poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

int cjail_spawner_serve(int sock) {
    cjail_spawner_main_socket = sock;
    for (;;) {
        if (!wait_request(sock)) break;
        union message m;
        int got[CJAIL_MAX_PASSED_FDS], count = 0;
        long n = cjail_recv_with_fds(sock, &m, sizeof m, 0, got, CJAIL_MAX_PASSED_FDS, &count);
        if (n == 0 && !hung_up(sock)) { close_all(got, count); continue; } /* an empty message, not EOF */
        if (n == 0) break;
        if (n == -EPROTO) continue; /* too many descriptors: all closed */
        if (n < 0) break;
        serve_one(sock, &m, n, got, count);
    }
    drop_pending();
    if (netns_after >= 0) close(netns_after);
    netns_after = -1;
    spawner_warm_discard(-1); /* the daemon is gone: nobody to notify */
    spawner_kill_workers();
    return 0;
}

/* One daemon's connection to a spawner service (spawner_listen.c): served like a started
 * spawner's socket; other connections meanwhile are turned away. Its end locks the template set
 * (a later daemon finds what the first one locked: a compromised daemon cannot reconnect to
 * register another), after every worker of the connection was killed. */
void spawner_serve_session(int sock, int listener) {
    session_listener = listener;
    (void)cjail_spawner_serve(sock);
    session_listener = -1;
    spawner_lock_templates();
}
