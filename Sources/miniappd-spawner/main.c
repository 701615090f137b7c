/* miniappd-spawner: the small single-threaded process that clones every jailed worker (see
 * Sources/CJail/spawner_server.c for why it exists). Started by the daemon, never by hand:
 *
 *     miniappd-spawner <socket-fd> <daemon-pid>
 *
 * It dies with the daemon: PDEATHSIG, plus a check that its parent is still the daemon that
 * started it (the daemon may have died between spawn and prctl), plus EOF on the socket. */
#define _GNU_SOURCE
#include "cjail.h"
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int sock = atoi(argv[1]);
    pid_t daemon = (pid_t)atol(argv[2]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != daemon) return 3;
    prctl(PR_SET_NAME, "miniappd-spawn", 0, 0, 0);
    /* Every disposition SIG_DFL (posix_spawn already asked for it): workers inherit them, and
     * cjail_clone's children rely on it instead of resetting 64 signals each. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
    return cjail_spawner_serve(sock) == 0 ? 0 : 1;
}
