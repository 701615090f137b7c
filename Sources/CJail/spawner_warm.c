/* The spawner's warm jail: one jail cloned ahead of time, through phase A (namespaces, the
 * launch-independent mount ops), waiting for a launch (child_embryo.c).
 *
 * It is made after a launch that asked for it (CJAIL_SPAWN_WARM), from that launch's own spec,
 * so it matches the next launch of the same daemon policy without any other message: its key
 * is the launch-independent part of the spec (clone flags, id map, root, the first
 * static_mount_count mount ops), compared byte for byte. A launch with the same key takes it:
 * the spawner attaches it to the launch's cgroups and sends it the launch's blob and fds;
 * what remains is phase B. A launch with another key (the policy was reloaded), or a warm jail
 * found dead, makes the spawner discard it and spawn cold.
 *
 * A warm jail is the daemon's child (CLONE_PARENT, like every worker), so a discarded one is
 * the daemon's to reap: the spawner kills it and sends its pidfd in a notice on the main
 * socket (cjail_spawner_notice). Single warm jail: launches come one at a time through the
 * spawner, and the next is made as soon as one is taken. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int spawner_write_id_maps(const struct cjail_spawn_request *req, pid_t pid);
int spawner_attach(const int *fds, pid_t pid);

static struct {
    int active;
    struct cjail_child c; /* go_fd -1 once it runs */
    int chan;
    unsigned char *key;
    size_t key_len;
} warm;

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

static void forget(void) {
    int fds[5] = {warm.c.pidfd, warm.c.go_fd, warm.c.err_fd, warm.c.status_fd, warm.chan};
    for (int i = 0; i < 5; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(warm.key);
    memset(&warm, 0, sizeof warm);
    warm.c = (struct cjail_child){0, -1, -1, -1, -1};
    warm.chan = -1;
}

/* Kills the warm jail and hands its pidfd to the daemon for reaping (sock < 0: no daemon). */
void spawner_warm_discard(int sock) {
    if (!warm.active) return;
    syscall(SYS_pidfd_send_signal, warm.c.pidfd, SIGKILL, NULL, 0);
    if (sock >= 0) {
        struct cjail_spawner_notice n = {CJAIL_SPAWN_MAGIC, warm.c.pid, {0, 0, 0, -1}};
        /* A record it wrote before dying on its own says why (non-blocking: usually none). */
        struct pollfd p = {warm.c.err_fd, POLLIN, 0};
        if (poll(&p, 1, 0) == 1) {
            struct cjail_error rec;
            if (read(warm.c.err_fd, &rec, sizeof rec) == (ssize_t)sizeof rec && rec.magic == CJAIL_ERROR_MAGIC) n.error = rec;
        }
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof ctl);
        struct iovec iov = {&n, sizeof n};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &warm.c.pidfd, sizeof(int));
        ssize_t w;
        do { w = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); } while (w < 0 && errno == EINTR);
    }
    forget();
}

void spawner_warm_make(int sock, const struct cjail_spawn_request *req, const struct cjail_spec *spec, int netns) {
    if (warm.active) return;
    struct buf key;
    if (make_key(req, spec, netns, &key)) { free(key.p); return; }
    struct cjail_spec t = *spec; /* phase A reads only the launch-independent fields */
    t.clone_flags |= CLONE_PARENT | (netns ? CLONE_NEWNET : 0);
    t.netns_fd = -1;
    t.stdin_fd = t.stdout_fd = t.stderr_fd = t.bridge_fd = -1;
    t.trace = NULL;
    struct cjail_child c;
    int chan = -1;
    if (cjail_clone_embryo(&t, &c, &chan) != 0) { free(key.p); return; }
    warm.active = 1;
    warm.c = c;
    warm.chan = chan;
    warm.key = key.p;
    warm.key_len = key.len;
    /* Rootless: the maps first (it must become root of its user namespace before phase A). */
    if (((req->flags & CJAIL_SPAWN_IDMAP) && spawner_write_id_maps(req, c.pid)) || cjail_go(&warm.c)) spawner_warm_discard(sock);
}

static int send_launch(const struct cjail_spawn_request *req, const int *fds) {
    const int roles[CJAIL_EMBRYO_FD_COUNT] = {CJAIL_SPAWN_FD_BLOB, CJAIL_SPAWN_FD_STDIN, CJAIL_SPAWN_FD_STDOUT,
                                               CJAIL_SPAWN_FD_STDERR, CJAIL_SPAWN_FD_BRIDGE, CJAIL_SPAWN_FD_TRACE};
    struct cjail_embryo_launch m = {CJAIL_SPAWN_MAGIC, 0, req->blob_len};
    int out[CJAIL_EMBRYO_FD_COUNT], n = 0;
    for (int r = 0; r < CJAIL_EMBRYO_FD_COUNT; r++) {
        if (fds[roles[r]] < 0) continue;
        m.fd_mask |= 1u << r;
        out[n++] = fds[roles[r]];
    }
    union {
        char buf[CMSG_SPACE(sizeof out)];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {&m, sizeof m};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(cm), out, sizeof(int) * (size_t)n);
    ssize_t w;
    do { w = sendmsg(warm.chan, &msg, MSG_NOSIGNAL); } while (w < 0 && errno == EINTR);
    return w == (ssize_t)sizeof m ? 0 : -(w < 0 ? errno : EPROTO);
}

/* Gives the launch to the warm jail when it matches. Returns 1 when the warm jail took it (or
 * failed it: *e, *step), 0 when the launch must be spawned cold. */
int spawner_warm_take(int sock, const struct cjail_spawn_request *req, const int *fds, const struct cjail_spec *spec,
                      uint64_t *trace, struct cjail_child *c, int *e, int32_t *step) {
    if (!warm.active) return 0;
    struct buf key;
    int netns = fds[CJAIL_SPAWN_FD_NETNS] >= 0 || (spec->clone_flags & CLONE_NEWNET);
    int same = make_key(req, spec, netns, &key) == 0 && key.len == warm.key_len && memcmp(key.p, warm.key, key.len) == 0;
    free(key.p);
    struct pollfd p = {warm.c.pidfd, POLLIN, 0};
    if (!same || poll(&p, 1, 0) != 0) { /* another policy, or it died */
        spawner_warm_discard(sock);
        return 0;
    }
    *step = CJAIL_SPAWN_CGROUP;
    int r = spawner_attach(fds, warm.c.pid);
    if (r == 0) {
        *step = CJAIL_SPAWN_GO;
        r = send_launch(req, fds);
    }
    if (trace) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        trace[CJAIL_TRACE_SPAWNER_ATTACHED] = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    if (r != 0) {
        /* It cannot be used: discarded (the daemon reaps it); this launch fails like a cold one
         * would have at the same step. */
        *e = r;
        spawner_warm_discard(sock);
        return 1;
    }
    *c = warm.c;
    warm.c = (struct cjail_child){0, -1, -1, -1, -1};
    forget();
    *e = 0;
    return 1;
}
