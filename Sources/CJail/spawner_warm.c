/* The spawner's warm jails: jails cloned ahead of time, through phase A (namespaces, the
 * launch-independent mount ops), each waiting for a launch (child_warm_jail.c).
 *
 * One is made after a launch that asked for it (CJAIL_SPAWN_WARM), from that launch's own spec,
 * so it matches the next launch of the same daemon policy without any other message: its key
 * is the launch-independent part of the spec (clone flags, id map, root, the first
 * static_mount_count mount ops), compared byte for byte. A launch with the same key takes it:
 * the spawner attaches it to the launch's cgroups and sends it the launch's blob and fds;
 * what remains is phase B. A warm jail found dead is discarded; a launch that finds none of its
 * key spawns cold. Jails of other keys (another jailer, or the policy before a reload) stay
 * until they are the oldest when room is needed.
 *
 * A warm jail is the daemon's child (CLONE_PARENT, like every worker; a spawner service's are
 * its own, reaped here), so one that is never used is the daemon's to reap: the spawner announces each on its main socket with its pidfd
 * (cjail_spawner_notice), and the daemon reaps it if it dies first, also if the spawner died. Two warm jails per key (four in all): made after a launch's
 * program was exec'd, at nice 19, so that even back-to-back launches find one that finished its
 * phase A mostly on CPU time nothing else wanted.
 *
 * Pooled cgroups (CJAIL_SPAWN_WARM_CGROUP): a warm jail is put into a cgroup the daemon lent
 * (made ahead, carrying the limits of the launch that lent it) when it is made, before its
 * phase A, so the launch that takes it writes no cgroup.procs and opens none. Moving a task on
 * cgroup v1 takes cgroup_threadgroup_rwsem for writing, whose percpu rwsem must first wait for
 * an RCU grace period (rcu_sync_enter: 5-11 ms on an idle kernel for the first write of a
 * move): paid here, by the refill, instead of by the launch. The cgroup limits are part of the
 * key, so a launch only takes a jail whose cgroup already carries its limits (set before the
 * program's code runs, as for a cold spawn). A jail of the key made without one (none lent) is
 * attached at the take, as before. Each lent cgroup goes back to the daemon in a notice: with
 * the jail put in it (the daemon removes the cgroup if it reaps the jail untaken), or unused. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include "fd_passing.h"
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int spawner_write_id_maps(const struct cjail_spawn_request *req, pid_t pid);
int spawner_attach(const int *fds, pid_t pid);
int spawner_request_procs(const struct cjail_spawn_request *req, int *fds);
int spawner_lent_procs(const struct cjail_spawn_request *req, const char name[CJAIL_NAME_MAX], int *procs);

#define WARM_MAX 4     /* in all */
#define WARM_PER_KEY 2

struct warm_jail {
    int active;
    int idle;             /* made at nice 19: raised when taken */
    struct cjail_child c; /* go_fd -1 once it runs */
    int chan;
    unsigned char *key;
    size_t key_len;
    char cgroup[CJAIL_NAME_MAX]; /* the lent cgroup it was put in, or empty */
};

static struct warm_jail warm[WARM_MAX]; /* in the order they were made */

/* ---- the key ---- */

struct buf {
    unsigned char *p;
    size_t len, cap;
    int bad;
};

static void put(struct buf *b, const void *data, size_t n) {
    if (b->bad) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) { b->bad = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_str(struct buf *b, const char *s) {
    if (!s) { put(b, "\xff", 1); return; } /* NULL differs from "" */
    put(b, s, strlen(s) + 1);
}

/* The launch-independent part of `s` (netns: whether it wants a network namespace). */
static int make_key(const struct cjail_spawn_request *req, const struct cjail_spec *s, int netns, struct buf *b) {
    *b = (struct buf){0};
    uint64_t flags = s->clone_flags | (netns ? CLONE_NEWNET : 0);
    put(b, &flags, sizeof flags);
    uint32_t idmap[5] = {req->flags & CJAIL_SPAWN_IDMAP, req->inside_uid, req->outside_uid, req->inside_gid, req->outside_gid};
    put(b, idmap, sizeof idmap);
    /* Pooled cgroups: which limits its cgroup carries (the daemon wrote them before lending it). */
    uint64_t cg[4] = {0, 0, 0, 0};
    if (req->flags & CJAIL_SPAWN_WARM_CGROUP) {
        cg[0] = 1;
        memcpy(cg + 1, req->cgroup_limits, sizeof req->cgroup_limits);
    }
    put(b, cg, sizeof cg);
    put_str(b, s->root_path);
    put_str(b, s->root_options);
    put(b, &s->static_mount_count, sizeof s->static_mount_count);
    for (uint32_t i = 0; i < s->static_mount_count && i < s->mount_count; i++) {
        const struct cjail_mount_op *m = &s->mounts[i];
        int32_t head[4] = {m->kind, m->source_is_dir, (int32_t)m->mode, 0};
        put(b, head, sizeof head);
        put(b, &m->attr_set, sizeof m->attr_set);
        put_str(b, m->source);
        put_str(b, m->target);
        if (m->kind == CJAIL_MNT_FILE) {
            put(b, &m->data_len, sizeof m->data_len);
            if (m->data) put(b, m->data, m->data_len);
        } else {
            put_str(b, m->data);
        }
    }
    return b->bad ? -ENOMEM : 0;
}

/* ---- lifecycle ---- */

extern int cjail_warm_jail_nice19; /* parent_clone.c */

/* Process `pid` (0: the caller) at nice 19 (1) or back to the spawner's own nice value, the
 * daemon's (0; lowering needs CAP_SYS_NICE). */
static int idle_policy(pid_t pid, int on) {
    static int base = -100;
    if (base == -100) {
        errno = 0;
        int n = getpriority(PRIO_PROCESS, 0);
        base = (n == -1 && errno) ? 0 : n;
    }
    return setpriority(PRIO_PROCESS, (id_t)pid, on ? 19 : base) < 0 ? -errno : 0;
}

static void forget(struct warm_jail *w) {
    int fds[5] = {w->c.pidfd, w->c.go_fd, w->c.err_fd, w->c.status_fd, w->chan};
    for (int i = 0; i < 5; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(w->key);
    memset(w, 0, sizeof *w);
    w->c = (struct cjail_child){0, -1, -1, -1, -1};
    w->chan = -1;
}

/* Removes slot i keeping the order of the others. */
static void remove_slot(int i) {
    for (int j = i; j + 1 < WARM_MAX; j++) warm[j] = warm[j + 1];
    memset(&warm[WARM_MAX - 1], 0, sizeof warm[0]);
    warm[WARM_MAX - 1].c = (struct cjail_child){0, -1, -1, -1, -1};
    warm[WARM_MAX - 1].chan = -1;
}

static int count(void) {
    int n = 0;
    while (n < WARM_MAX && warm[n].active) n++;
    return n;
}

/* Tells the daemon about a new warm jail: its child to reap should it never be used. A
 * spawner service's jails are its own children: nothing to tell. */
static void announce(int sock, const struct warm_jail *w) {
    if (cjail_spawner_own_children) return;
    struct cjail_spawner_notice n = {CJAIL_SPAWN_MAGIC, w->c.pid, {0}};
    memcpy(n.cgroup, w->cgroup, sizeof n.cgroup);
    (void)cjail_send_with_fds(sock, &n, sizeof n, &w->c.pidfd, 1);
}

void spawner_warm_return_cgroup(int sock, const char *name) {
    if (!name[0] || sock < 0) return;
    struct cjail_spawner_notice n = {CJAIL_SPAWN_MAGIC, 0, {0}};
    memcpy(n.cgroup, name, strnlen(name, CJAIL_NAME_MAX - 1)); /* NUL-terminated: n is zeroed */
    (void)cjail_send_with_fds(sock, &n, sizeof n, NULL, 0);
}

/* Puts warm jail w (not started yet) into the lent cgroup it was announced with. -errno. */
static int put_in_cgroup(const struct cjail_spawn_request *req, const struct warm_jail *w) {
    int procs[CJAIL_SPAWN_FD_COUNT];
    for (int i = 0; i < CJAIL_SPAWN_FD_COUNT; i++) procs[i] = -1;
    int e = spawner_lent_procs(req, w->cgroup, procs + CJAIL_SPAWN_FD_PROCS);
    if (!e) e = spawner_attach(procs, w->c.pid);
    for (int i = 0; i < CJAIL_SPAWN_FD_COUNT; i++)
        if (procs[i] >= 0) close(procs[i]);
    return e;
}

/* Kills warm jail i (the daemon, told at its making, reaps it; a spawner service reaps its
 * own: SIGKILLed, it is gone at once). */
static void discard_one(int sock, int i) {
    (void)sock;
    syscall(SYS_pidfd_send_signal, warm[i].c.pidfd, SIGKILL, NULL, 0);
    if (cjail_spawner_own_children) {
        int32_t code, status;
        while (cjail_waitid_pidfd(warm[i].c.pidfd, WEXITED, &code, &status) < 0 && errno == EINTR) {}
    }
    forget(&warm[i]);
    remove_slot(i);
}

void spawner_warm_discard(int sock) {
    while (count() > 0) discard_one(sock, 0);
}

int spawner_warm_pollfds(struct pollfd *out, int max) {
    int n = 0;
    for (int i = 0; i < count() && n < max; i++) out[n++] = (struct pollfd){warm[i].c.pidfd, POLLIN, 0};
    return n;
}

/* Discards (and has the daemon reap) every warm jail that died, at once: a jail of a policy no
 * launch asks for any more would otherwise wait, a zombie, until it is evicted. */
void spawner_warm_drop_dead(int sock) {
    for (int i = 0; i < count();) {
        struct pollfd p = {warm[i].c.pidfd, POLLIN, 0};
        if (poll(&p, 1, 0) != 0) discard_one(sock, i);
        else i++;
    }
}

static int same_key(const struct warm_jail *w, const struct buf *key) {
    return w->key_len == key->len && memcmp(w->key, key->p, key->len) == 0;
}

static int count_key(const struct buf *key) {
    int n = 0;
    for (int i = 0; i < count(); i++) n += same_key(&warm[i], key);
    return n;
}

/* How many more warm jails of this launch's key are wanted. */
int spawner_warm_missing(const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns) {
    struct buf key;
    if (make_key(req, spec, netns, &key)) { free(key.p); return 0; }
    int n = WARM_PER_KEY - count_key(&key);
    free(key.p);
    return n > 0 ? n : 0;
}

/* Makes one warm jail of this launch's key, in cgroup `lent` when not empty. Returns 1 when
 * `lent` was used (announced with the jail: the daemon gets it back when it reaps the jail). */
int spawner_warm_make(int sock, const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns, const char *lent) {
    struct buf key;
    if (make_key(req, spec, netns, &key)) { free(key.p); return 0; }
    if (count_key(&key) >= WARM_PER_KEY) { free(key.p); return 0; }
    if (count() >= WARM_MAX) { /* room: the oldest jail of another key goes */
        int victim = -1;
        for (int i = 0; i < count() && victim < 0; i++)
            if (!same_key(&warm[i], &key)) victim = i;
        if (victim < 0) { free(key.p); return 0; }
        discard_one(sock, victim);
    }
    int n = count();
    struct cjail_spec t = *spec; /* phase A reads only the launch-independent fields */
    uint64_t all = t.clone_flags | (netns ? CLONE_NEWNET : 0);
    /* Cloned into its pid (and user) namespaces only, the rest unshared by the jail itself
     * (child_main.c, phase A): the spawner is back serving requests in ~60 µs instead of ~500. */
    uint64_t at_clone = all & (uint64_t)(CLONE_NEWPID | CLONE_NEWUSER);
    t.clone_flags = at_clone | (cjail_spawner_own_children ? 0 : CLONE_PARENT);
    t.late_unshare = (int32_t)(all & ~at_clone & (uint64_t)(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS));
    if ((all & ~at_clone) != (uint64_t)t.late_unshare) { free(key.p); return 0; } /* a flag we do not know how to move */
    t.netns_fd = -1;
    t.stdin_fd = t.stdout_fd = t.stderr_fd = t.bridge_fd = -1;
    t.trace = NULL;
    struct cjail_child c;
    int chan = -1;
    /* Made in the background: at nice 19 it takes mostly CPU time nothing else wants (a launch
     * setting itself up, or the program it just started). Only when it may be raised back when
     * taken (root: CAP_SYS_NICE). The jail lowers itself right after the clone (parent_clone.c):
     * the spawner never runs at nice 19, so a launch arriving during a refill waits for at
     * most the clone call at the spawner's own priority. */
    int idle = geteuid() == 0;
    cjail_warm_jail_nice19 = idle;
    int made = cjail_clone_warm_jail(&t, &c, &chan);
    cjail_warm_jail_nice19 = 0;
    if (made != 0) { free(key.p); return 0; }
    warm[n] = (struct warm_jail){1, idle, c, chan, key.p, key.len, {0}};
    int used = lent && lent[0];
    if (used) memcpy(warm[n].cgroup, lent, CJAIL_NAME_MAX);
    announce(sock, &warm[n]); /* with its cgroup: from now on the daemon's to remove should the jail die untaken */
    /* Into its cgroup before it runs anything (the move's RCU wait is paid here, off every
     * launch's path); rootless, the maps first (it must become root of its user namespace
     * before phase A). */
    if ((used && put_in_cgroup(req, &warm[n])) ||
        ((req->flags & CJAIL_SPAWN_IDMAP) && spawner_write_id_maps(req, c.pid)) || cjail_go(&warm[n].c))
        discard_one(sock, n);
    return used;
}

/* A cgroup lent and not used by the refill: it replaces a warm jail of this launch's key that
 * waits without a cgroup (made when none was lent: after a daemon's first, cold launch), so the
 * launch that would take that one moves no task either. The old jail is discarded (the daemon
 * reaps it) and a new one made in `lent`. Returns what spawner_warm_make returns. */
int spawner_warm_replace_bare(int sock, const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns, const char *lent) {
    if (!lent || !lent[0] || !(req->flags & CJAIL_SPAWN_WARM_CGROUP)) return 0;
    struct buf key;
    if (make_key(req, spec, netns, &key)) { free(key.p); return 0; }
    int bare = -1;
    for (int i = 0; i < count() && bare < 0; i++)
        if (same_key(&warm[i], &key) && !warm[i].cgroup[0]) bare = i;
    free(key.p);
    if (bare < 0) return 0;
    discard_one(sock, bare);
    return spawner_warm_make(sock, req, spec, netns, lent);
}

/* The launch, to a warm jail: the daemon's spec memfd itself (sealed against every change, so
 * it still holds the bytes the spawner checked), its fds, and the opened program trees. -errno. */
static int send_launch(struct warm_jail *w, const int *fds, size_t len, const struct cjail_check *ck, const int *trees) {
    const int roles[6] = {CJAIL_SPAWN_FD_BLOB, CJAIL_SPAWN_FD_STDIN, CJAIL_SPAWN_FD_STDOUT,
                          CJAIL_SPAWN_FD_STDERR, CJAIL_SPAWN_FD_BRIDGE, CJAIL_SPAWN_FD_TRACE};
    struct cjail_warm_jail_launch m = {CJAIL_SPAWN_MAGIC, 0, len, {-1, -1, -1, -1}};
    int out[CJAIL_WARM_JAIL_FD_COUNT], n = 0;
    for (int r = 0; r < 6; r++) {
        int fd = fds[roles[r]];
        if (fd < 0) continue;
        m.fd_mask |= 1u << r;
        out[n++] = fd;
    }
    for (int k = 0; k < CJAIL_MAX_TREES; k++) {
        if (trees[k] < 0) continue;
        m.fd_mask |= 1u << (CJAIL_WARM_JAIL_FD_TREE + k);
        m.tree_op[k] = ck->tree_op[k];
        out[n++] = trees[k];
    }
    return -cjail_send_with_fds(w->chan, &m, sizeof m, out, n);
}

/* Gives the launch to the oldest warm jail of its key (discarding dead ones). Returns 1 when a
 * warm jail took it, 0 when the launch must be spawned cold. */
int spawner_warm_take(int sock, const struct cjail_spawn_request *req, int *fds, const struct cjail_spec *spec,
                      size_t blob_len, const struct cjail_check *ck, const int *trees,
                      uint64_t *trace, struct cjail_child *c, int *e, int32_t *step, char jail_cgroup[CJAIL_NAME_MAX]) {
    struct buf key;
    int netns = fds[CJAIL_SPAWN_FD_NETNS] >= 0 || (spec->clone_flags & CLONE_NEWNET);
    if (make_key(req, spec, netns, &key)) { free(key.p); return 0; }
    int found = -1;
    for (int i = 0; i < count() && found < 0;) {
        if (!same_key(&warm[i], &key)) { i++; continue; }
        struct pollfd p = {warm[i].c.pidfd, POLLIN, 0};
        if (poll(&p, 1, 0) != 0) discard_one(sock, i); /* it died: the next one slides into i */
        else found = i;
    }
    free(key.p);
    if (found < 0) return 0;
    struct warm_jail *w = &warm[found];
    if (w->idle) idle_policy(w->c.pid, 0); /* a launch runs at the normal policy, also its phase A's rest */
    *step = CJAIL_SPAWN_CGROUP;
    /* In its own pooled cgroup already: nothing to move, nothing to open. */
    int r = w->cgroup[0] ? 0 : spawner_request_procs(req, fds);
    if (r == 0 && !w->cgroup[0]) r = spawner_attach(fds, w->c.pid);
    if (r == 0) {
        *step = CJAIL_SPAWN_GO;
        int given[CJAIL_SPAWN_FD_COUNT];
        memcpy(given, fds, sizeof given);
        if (!trace) given[CJAIL_SPAWN_FD_TRACE] = -1; /* refused by load(): not sealed */
        r = send_launch(w, given, blob_len, ck, trees);
    }
    if (trace) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        trace[CJAIL_TRACE_SPAWNER_ATTACHED] = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    if (r != 0) {
        /* It cannot be used (it died meanwhile, or the attach failed): discarded (the daemon
         * reaps it), and the launch is spawned cold, which reports a real cgroup problem at
         * its own attach. */
        discard_one(sock, found);
        return 0;
    }
    *c = w->c;
    memcpy(jail_cgroup, w->cgroup, CJAIL_NAME_MAX);
    w->c = (struct cjail_child){0, -1, -1, -1, -1};
    forget(w);
    remove_slot(found);
    *e = 0;
    return 1;
}
