/* bridge_client.c - a worker-side Bridge client in plain C, for benchmarks and jail probes.
 *
 * Speaks the Bridge exactly as a mini-program does: JSON-RPC 2.0, one message per line, on the
 * already-connected socket at fd 3 (MINIAPP_BRIDGE_FD). No allocation in the loop, no library
 * beyond libc, so it runs unchanged inside the jail (static-linkable).
 *
 *   bridge_client lat  <name> <method> <params-json> <iters> <warmup>
 *       one call in flight; prints RESULT|<name>|p50|p99|p999|calls/s|calls/s|notes
 *   bridge_client tput <start_monotonic_ns> <seconds> <depth> <method> <params-json>
 *       keeps <depth> calls in flight; writes the number of answers received inside the
 *       window [start, start+seconds) as 8 raw bytes to fd 4
 *   bridge_client provider
 *       fd 3 is a host-provider control connection: answers every bridge.call with
 *       {"transactionId":"tx-1"} until EOF
 * Every answer is checked: matching id and a "result" member, else exit 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FD 3
static char rbuf[1 << 20];
static size_t rstart, rend;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(FD, p, n, MSG_NOSIGNAL);
        if (w < 0) { if (errno == EINTR) continue; perror("bridge_client: send"); exit(2); }
        p += w; n -= (size_t)w;
    }
}

/* Returns the next line (NUL-terminated in place, newline stripped), or NULL at EOF. */
static char *read_line(size_t *len) {
    for (;;) {
        char *nl = memchr(rbuf + rstart, '\n', rend - rstart);
        if (nl) {
            char *line = rbuf + rstart;
            *nl = 0;
            *len = (size_t)(nl - line);
            rstart = (size_t)(nl - rbuf) + 1;
            return line;
        }
        if (rstart > 0) { memmove(rbuf, rbuf + rstart, rend - rstart); rend -= rstart; rstart = 0; }
        if (rend == sizeof rbuf - 1) { fprintf(stderr, "bridge_client: line too long\n"); exit(2); }
        ssize_t r = read(FD, rbuf + rend, sizeof rbuf - 1 - rend);
        if (r < 0) { if (errno == EINTR) continue; perror("bridge_client: read"); exit(2); }
        if (r == 0) return NULL;
        rend += (size_t)r;
    }
}

/* id of an answer written by miniappd: {"jsonrpc":"2.0","id":N,"result":...} */
static long long answer_id(const char *line, int *ok) {
    const char *p = strstr(line, "\"id\":");
    *ok = 0;
    if (!p) return -1;
    char *end;
    long long id = strtoll(p + 5, &end, 10);
    if (end == p + 5) return -1;
    *ok = strncmp(end, ",\"result\":", 10) == 0;
    return id;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *s, size_t n, double p) {
    size_t i = (size_t)(p / 100.0 * (double)n);
    return (double)s[i >= n ? n - 1 : i] / 1000.0;
}

static size_t format_call(char *out, size_t cap, long long id, const char *method, const char *params) {
    return (size_t)snprintf(out, cap, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"%s\",\"params\":%s}\n", id, method, params);
}

static int run_lat(const char *name, const char *method, const char *params, long iters, long warmup) {
    uint64_t *samples = malloc(sizeof(uint64_t) * (size_t)iters);
    char req[4096];
    size_t reqlen = 0, resplen = 0;
    uint64_t t_all = 0;
    for (long i = -warmup; i < iters; i++) {
        if (i == 0) t_all = now_ns();
        uint64_t t0 = now_ns();
        reqlen = format_call(req, sizeof req, i + warmup + 1, method, params);
        write_all(req, reqlen);
        char *line = read_line(&resplen);
        int ok;
        if (!line || answer_id(line, &ok) != i + warmup + 1 || !ok) {
            fprintf(stderr, "bridge_client: bad answer: %s\n", line ? line : "(EOF)");
            return 2;
        }
        if (i >= 0) samples[i] = now_ns() - t0;
    }
    double secs = (double)(now_ns() - t_all) / 1e9;
    qsort(samples, (size_t)iters, sizeof *samples, cmp_u64);
    fprintf(stderr, "# %-24s n=%ld min=%.2fus p50=%.2fus p90=%.2fus p99=%.2fus max=%.2fus\n", name, iters,
            (double)samples[0] / 1000.0, pct(samples, (size_t)iters, 50), pct(samples, (size_t)iters, 90),
            pct(samples, (size_t)iters, 99), (double)samples[iters - 1] / 1000.0);
    char p999[32] = "-";
    if (iters >= 1000) snprintf(p999, sizeof p999, "%.2f", pct(samples, (size_t)iters, 99.9));
    printf("RESULT|%s|%.2f|%.2f|%s|%.0f|calls/s|%s via miniappd broker, req %zuB resp %zuB, C client on fd 3, %ld calls\n",
           name, pct(samples, (size_t)iters, 50), pct(samples, (size_t)iters, 99), p999, (double)iters / secs, method,
           reqlen, resplen + 1, iters);
    fflush(stdout);
    return 0;
}

static int run_tput(uint64_t start, double seconds, int depth, const char *method, const char *params) {
    uint64_t end = start + (uint64_t)(seconds * 1e9), count = 0;
    long long next = 1;
    char req[4096 * 16];
    size_t n = 0, len;
    for (int i = 0; i < depth; i++) n += format_call(req + n, sizeof req - n, next++, method, params);
    write_all(req, n);
    for (;;) {
        char *line = read_line(&len);
        int ok;
        if (!line || answer_id(line, &ok) < 0 || !ok) { fprintf(stderr, "bridge_client: bad answer: %s\n", line ? line : "(EOF)"); return 2; }
        uint64_t t = now_ns();
        if (t >= start && t < end) count++;
        if (t >= end) break;
        /* One answer in, one call out: <depth> calls stay in flight. */
        n = format_call(req, sizeof req, next++, method, params);
        write_all(req, n);
    }
    if (write(4, &count, sizeof count) != sizeof count) return 2;
    return 0;
}

static int run_provider(void) {
    size_t len;
    char *line, out[512];
    while ((line = read_line(&len))) {
        const char *p = strstr(line, "\"id\":\"");
        if (!p) continue;
        p += 6;
        const char *q = strchr(p, '"');
        if (!q || q - p > 64) continue;
        int n = snprintf(out, sizeof out, "{\"jsonrpc\":\"2.0\",\"id\":\"%.*s\",\"result\":{\"transactionId\":\"tx-1\"}}\n", (int)(q - p), p);
        write_all(out, (size_t)n);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 7 && !strcmp(argv[1], "lat")) return run_lat(argv[2], argv[3], argv[4], atol(argv[5]), atol(argv[6]));
    if (argc == 7 && !strcmp(argv[1], "tput"))
        return run_tput(strtoull(argv[2], NULL, 10), atof(argv[3]), atoi(argv[4]), argv[5], argv[6]);
    if (argc == 2 && !strcmp(argv[1], "provider")) return run_provider();
    fprintf(stderr, "usage: %s lat <name> <method> <params> <iters> <warmup> | tput <start_ns> <secs> <depth> <method> <params> | provider\n", argv[0]);
    return 2;
}
