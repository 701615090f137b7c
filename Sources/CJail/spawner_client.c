/* Daemon side of the spawner protocol (spawner_server.c): one request, one reply. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include "fd_passing.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int send_request(int sock, struct cjail_spawn_request req, const int32_t fds[CJAIL_SPAWN_FD_COUNT]) {
    req.magic = CJAIL_SPAWN_MAGIC;
    req.fd_mask = 0;
    int out[CJAIL_SPAWN_FD_COUNT], n = 0;
    for (int r = 0; r < CJAIL_SPAWN_FD_COUNT; r++) {
        if (fds[r] < 0) continue;
        req.fd_mask |= 1u << r;
        out[n++] = fds[r];
    }
    return cjail_send_with_fds(sock, &req, sizeof req, out, n);
}

int cjail_seqpacket_pair(int32_t out[2]) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    out[0] = sv[0];
    out[1] = sv[1];
    return 0;
}

int cjail_spawner_send(int sock, const struct cjail_spawn_request *req, const int32_t fds[CJAIL_SPAWN_FD_COUNT]) {
    if (fds[CJAIL_SPAWN_FD_REPLY] < 0 || fds[CJAIL_SPAWN_FD_BLOB] < 0) return EINVAL;
    return send_request(sock, *req, fds);
}

int cjail_spawner_read_reply(int reply_fd, struct cjail_spawn_reply *rep, struct cjail_child *out, int32_t *exit_fd) {
    *out = (struct cjail_child){0, -1, -1, -1, -1};
    *exit_fd = -1;
    int got[4], count = 0;
    long n = cjail_recv_with_fds(reply_fd, rep, sizeof *rep, MSG_DONTWAIT, got, 4, &count);
    if (n <= 0) return n == 0 ? EPIPE : (int)-n;
    uint32_t roles = rep->fd_roles, both = CJAIL_REPLY_FD_PIDFD | CJAIL_REPLY_FD_ERR;
    int shaped = (size_t)n == sizeof *rep && rep->magic == CJAIL_SPAWN_MAGIC && count == rep->fd_count &&
                 count == __builtin_popcount(roles) && (roles >> 4) == 0 && (count == 0 || (roles & both) == both) &&
                 rep->result <= 0 && (rep->result != 0 || count >= 2);
    if (!shaped) {
        for (int i = 0; i < count; i++) close(got[i]);
        return EPROTO;
    }
    if (count == 0) return 0;
    int i = 2;
    *out = (struct cjail_child){rep->pid, got[0], -1, got[1], -1};
    if (roles & CJAIL_REPLY_FD_STATUS) out->status_fd = got[i++];
    if (roles & CJAIL_REPLY_FD_EXIT) *exit_fd = got[i++];
    return 0;
}

int cjail_spawner_connect(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) return -ENAMETOOLONG;
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* Starts the spawner executable at `path` with its end of a SOCK_SEQPACKET pair as fd 3, an
 * empty environment, default signal dispositions and no other descriptor of the daemon
 * (spawn_connected.c; call it from the thread that clones, for PDEATHSIG). Returns 0, or -errno. */
int cjail_spawner_start(const char *path, int32_t *pid_out, int32_t *sock_out) {
    char pidbuf[24];
    snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
    char *const argv[] = {(char *)path, "3", pidbuf, NULL};
    char *const envp[] = {NULL};
    return cjail_spawn_connected(path, argv, envp, SOCK_SEQPACKET, NULL, 0, pid_out, sock_out);
}

int cjail_spawner_read_notice(int sock, struct cjail_spawner_notice *n, int32_t *pidfd) {
    *pidfd = -1;
    int count = 0;
    long r = cjail_recv_with_fds(sock, n, sizeof *n, MSG_DONTWAIT, pidfd, 1, &count);
    if (r < 0) return (int)r;
    if (r == 0) return -EPIPE;
    /* A jail comes with its pidfd; a returned cgroup (pid 0) with none. */
    int shape_ok = n->pid > 0 ? *pidfd >= 0 : (n->pid == 0 && *pidfd < 0 && n->cgroup[0]);
    if ((size_t)r != sizeof *n || n->magic != CJAIL_SPAWN_MAGIC || !shape_ok || !memchr(n->cgroup, 0, sizeof n->cgroup)) {
        if (*pidfd >= 0) close(*pidfd);
        *pidfd = -1;
        return -EPROTO;
    }
    return 0;
}

/* Sends one message with its own reply socket (role `reply_role` among `fds`) and waits for the
 * cjail_control_reply. 0 or -errno. */
static int ask(int sock, const void *msg, size_t len, int32_t *fds, int n, int reply_role) {
    int32_t pair[2];
    int e = cjail_seqpacket_pair(pair);
    if (e) return e;
    fds[reply_role] = pair[1];
    int out[CJAIL_MAX_PASSED_FDS], k = 0;
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) out[k++] = fds[i];
    e = -cjail_send_with_fds(sock, msg, len, out, k);
    close(pair[1]);
    struct cjail_control_reply rep;
    if (!e) {
        int got = 0, none[1];
        long r = cjail_recv_with_fds(pair[0], &rep, sizeof rep, 0, none, 0, &got);
        if (r < 0) e = (int)r;
        else if (r != (long)sizeof rep || rep.magic != CJAIL_CONTROL_MAGIC || rep.result > 0) e = -EPROTO;
        else e = rep.result;
    }
    close(pair[0]);
    return e;
}

int cjail_spawner_register(int sock, const struct cjail_template_request *t, int blob_fd, const int32_t *cgroup_fds, int cgroup_count) {
    if (blob_fd < 0 || cgroup_count < 0 || cgroup_count > CJAIL_SPAWN_MAX_PROCS) return -EINVAL;
    struct cjail_template_request req = *t;
    req.magic = CJAIL_TEMPLATE_MAGIC;
    int32_t fds[CJAIL_TEMPLATE_FD_COUNT];
    for (int r = 0; r < CJAIL_TEMPLATE_FD_COUNT; r++) fds[r] = -1;
    fds[CJAIL_TEMPLATE_FD_BLOB] = blob_fd;
    for (int i = 0; i < cgroup_count; i++) fds[CJAIL_TEMPLATE_FD_CGROUP + i] = cgroup_fds[i];
    req.fd_mask = 1u << CJAIL_TEMPLATE_FD_REPLY;
    for (int r = 0; r < CJAIL_TEMPLATE_FD_COUNT; r++)
        if (fds[r] >= 0) req.fd_mask |= 1u << r;
    return ask(sock, &req, sizeof req, fds, CJAIL_TEMPLATE_FD_COUNT, CJAIL_TEMPLATE_FD_REPLY);
}

int cjail_spawner_control(int sock, const struct cjail_control_request *req) {
    struct cjail_control_request r = *req;
    r.magic = CJAIL_CONTROL_MAGIC;
    int32_t fds[1] = {-1};
    return ask(sock, &r, sizeof r, fds, 1, 0);
}

int cjail_spawner_control_fd(int sock, const struct cjail_control_request *req, int fd) {
    if (fd < 0) return -EBADF;
    struct cjail_control_request r = *req;
    r.magic = CJAIL_CONTROL_MAGIC;
    int32_t fds[2] = {-1, fd}; /* the reply socket first: the spawner answers on got[0] */
    return ask(sock, &r, sizeof r, fds, 2, 0);
}

int cjail_send_message(int sock, const void *data, size_t len, const int32_t *fds, int n) {
    return cjail_send_with_fds(sock, data, len, fds, n);
}
