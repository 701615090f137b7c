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
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int sock = atoi(argv[1]);
    pid_t daemon = (pid_t)atol(argv[2]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != daemon) return 3;
    prctl(PR_SET_NAME, "miniappd-spawn", 0, 0, 0);
    return cjail_spawner_serve(sock) == 0 ? 0 : 1;
}
