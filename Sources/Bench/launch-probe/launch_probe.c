/* launch_probe: the mini-program of the launch.cold row (scripts/bench.d/daemon). The row is
 * stated against bwrap running /bin/true, so the program is the Bridge's /bin/true: a small
 * static C binary that makes one storage.get, notes when the reply arrived (CLOCK_MONOTONIC,
 * shared with the host: there is no time namespace), reports that time to the bench (which
 * serves ui.toast as host provider) and then waits for EOF on the Bridge (programs.stop).
 * Built by the bench script with the system cc (`cc -O2 -static`): the jail has no Swift
 * runtime, and a static Swift binary spends ~0.35 ms more in exec before its first call. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 16];
static size_t have;

static void put(const char *s) {
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(3, s + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(2);
        off += (size_t)w;
    }
}

/* Reads until a full line that is not an `event` notification; 0 on EOF. */
static int line(void) {
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            size_t len = (size_t)(nl - buf) + 1;
            int event = memmem(buf, len, "\"method\":\"event\"", 16) != NULL;
            int ok = memmem(buf, len, "\"result\"", 8) != NULL;
            memmove(buf, nl + 1, have - len);
            have -= len;
            if (event) continue;
            if (!ok) _exit(3); /* an error answer: the bench sees the worker exit */
            return 1;
        }
        if (have == sizeof buf) _exit(4);
        ssize_t n = read(3, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        have += (size_t)n;
    }
}

int main(void) {
    put("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"storage.get\",\"params\":{\"key\":\"bench\"}}\n");
    if (!line()) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[160];
    snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ui.toast\",\"params\":{\"message\":\"launch\",\"t\":%llu}}\n",
             (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
    put(msg);
    while (line()) {}
    return 0;
}
