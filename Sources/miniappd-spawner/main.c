/* miniappd-spawner: the small single-threaded process that clones every jailed worker (see
 * Sources/CJail/spawner_server.c for why it exists). Two ways to run it:
 *
 *     miniappd-spawner <socket-fd> <daemon-pid>
 *         started by the daemon (root, before it drops). It dies with the daemon: PDEATHSIG,
 *         plus a check that its parent is still the daemon that started it (the daemon may
 *         have died between spawn and prctl), plus EOF on the socket.
 *     miniappd-spawner --listen PATH --uid UID:GID|USER
 *         a service of its own (systemd/miniappd-spawner.service): listens on PATH for the
 *         daemon running as UID (Sources/CJail/spawner_listen.c); miniappd connects with
 *         --spawner-socket PATH. */
#define _GNU_SOURCE
#include "cjail.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

/* UID:GID, or a user name (its uid and primary group). 0 when parsed; root is refused. */
static int parse_ids(const char *ids, uint32_t *uid, uint32_t *gid) {
    if (!strchr(ids, ':')) {
        struct passwd *pw = getpwnam(ids);
        if (!pw) return -1;
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
        return pw->pw_uid == 0 ? -1 : 0;
    }
    char *end = NULL;
    unsigned long u = strtoul(ids, &end, 10);
    if (end == ids || *end != ':') return -1;
    const char *g = end + 1;
    unsigned long v = strtoul(g, &end, 10);
    if (end == g || *end != 0 || u == 0 || u >= 0xffffffffUL || v >= 0xffffffffUL) return -1;
    *uid = (uint32_t)u;
    *gid = (uint32_t)v;
    return 0;
}

static int listen_main(const char *path, const char *ids) {
    uint32_t uid, gid;
    if (parse_ids(ids, &uid, &gid) != 0) {
        fprintf(stderr, "miniappd-spawner: --uid %s is neither UID:GID nor an existing user other than root\n", ids);
        return 2;
    }
    int r = cjail_spawner_listen(path, uid, gid);
    fprintf(stderr, "miniappd-spawner: cannot listen on %s: %s\n", path, strerror(-r));
    return 1;
}

int main(int argc, char **argv) {
    int listening = argc == 5 && strcmp(argv[1], "--listen") == 0 && strcmp(argv[3], "--uid") == 0;
    if (argc != 3 && !listening) {
        fprintf(stderr, "usage: miniappd-spawner --listen PATH --uid UID:GID|USER (or started by miniappd)\n");
        return 2;
    }
    int sock = -1;
    if (!listening) {
        sock = atoi(argv[1]);
        pid_t daemon = (pid_t)atol(argv[2]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != daemon) return 3;
    }
    prctl(PR_SET_NAME, "miniappd-spawn", 0, 0, 0);
    /* Every disposition SIG_DFL (posix_spawn already asked for it): workers inherit them, and
     * cjail_clone's children rely on it instead of resetting 64 signals each. A service's
     * SIGPIPE too: a reply to a daemon that is gone is not the spawner's death. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    if (listening) return listen_main(argv[2], argv[4]);
    return cjail_spawner_serve(sock) == 0 ? 0 : 1;
}
