/* The spawner as a service of its own (systemd/miniappd-spawner.service): it listens on a Unix
 * socket instead of being started by the daemon, so the daemon's unit can start unprivileged
 * (User=miniappd, no capability at all) and only this unit keeps the capabilities.
 *
 * Who may connect: the socket file is made 0600 and owned by the daemon's user (the directory
 * it is in belongs to root), and every connection's SO_PEERCRED uid must be that user's, else
 * it is closed unread: the uid is the connection's, never a field a client sends. One daemon at
 * a time: while one is served, further connections are accepted and closed at once.
 *
 * What a connection ends: every worker it started is SIGKILLed (the daemon is gone, nobody is
 * left to stop them) and reaped once gone (a frozen one once it is thawed), never signalled for
 * another connection; and the template set is locked for good, so a reconnecting
 * client finds the set the first daemon registered and locked and can add none (a compromised
 * daemon that drops its connection to reconnect gains nothing but killing its own workers).
 *
 * The workers are this process's children (no CLONE_PARENT: its parent is the service
 * manager): it reaps them and sends each exit on the worker's own exit pipe (cjail.h,
 * CJAIL_REPLY_FD_EXIT), and they die with it (PDEATHSIG is now sent by root). */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

void spawner_serve_session(int sock, int listener);
void spawner_reap_workers(void);
int spawner_worker_pollfds(struct pollfd *out, int max);

/* The listening socket at `path`: made under a temporary name, 0600 from the start (umask),
 * given to uid:gid and listening before it is renamed into place, so that a client never finds
 * a socket it cannot use yet; a stale socket file at `path` is replaced (nothing else is).
 * -errno on failure. */
static int listen_at(const char *path, uint32_t uid, uint32_t gid) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) + 5 >= sizeof a.sun_path) return -ENAMETOOLONG;
    snprintf(a.sun_path, sizeof a.sun_path, "%s.new", path);
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) return -EEXIST;
    if (lstat(a.sun_path, &st) == 0 && (!S_ISSOCK(st.st_mode) || unlink(a.sun_path) < 0)) return -EEXIST;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (r < 0 || chown(a.sun_path, uid, gid) < 0 || chmod(a.sun_path, 0600) < 0 || listen(fd, 4) < 0 || rename(a.sun_path, path) < 0) {
        int e = -errno;
        if (r == 0) unlink(a.sun_path);
        close(fd);
        return e;
    }
    return fd;
}

/* The connection's peer is `uid` (the kernel's word, taken at connect). */
static int peer_is(int conn, uint32_t uid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    return getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof cred && cred.uid == uid;
}

/* Waits for a connection, reaping meanwhile the workers of an ended connection that were
 * still dying when it ended. 0, or -errno. */
static int wait_connection(int listener) {
    for (;;) {
        struct pollfd p[1 + 64] = {{listener, POLLIN, 0}};
        int n = spawner_worker_pollfds(p + 1, 64);
        if (poll(p, (nfds_t)(1 + n), -1) < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        for (int i = 1; i <= n; i++)
            if (p[i].revents) { spawner_reap_workers(); break; }
        if (p[0].revents) return 0;
    }
}

int cjail_spawner_listen(const char *path, uint32_t uid, uint32_t gid) {
    if (uid == 0) return -EINVAL; /* the daemon's user is never root: that would separate nothing */
    int listener = listen_at(path, uid, gid);
    if (listener < 0) return listener;
    cjail_spawner_own_children = 1;
    for (;;) {
        int e = wait_connection(listener);
        int conn = e ? -1 : accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
            if (!e && (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)) continue;
            e = e ? e : -errno;
            close(listener);
            return e;
        }
        if (!peer_is(conn, uid)) {
            fprintf(stderr, "miniappd-spawner: refused a connection: its uid is not %u\n", uid);
            close(conn);
            continue;
        }
        spawner_serve_session(conn, listener);
        close(conn);
    }
}
