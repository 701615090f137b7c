/* Child: a warm jail. The spawner clones it ahead of time from the spec of an earlier launch
 * (its "template"); it runs phase A (namespaces, the launch-independent mount ops [0, K)) and
 * then waits here for a launch: the spec blob of the launch and the descriptors it names, sent
 * by the spawner on the jail's own channel once it has attached the jail to the worker's
 * cgroups. Phase B then runs on that spec exactly as for a cold spawn.
 *
 * Unlike the rest of the child side, this code allocates (cjail_spec_unpack): a warm jail is a
 * clone of the spawner, a single-threaded process that was not inside malloc when it cloned,
 * so no lock can be held by a thread that does not exist here. */
#define _GNU_SOURCE
#include "child_internal.h"
#include "fd_passing.h"
#include <errno.h>
#include <linux/close_range.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int close_between(unsigned lo, unsigned hi) {
    if (lo > hi) return 0;
    return syscall(SYS_close_range, lo, hi, 0U) < 0 ? errno : 0;
}

int child_keep_fds(int err_fd, int status_fd, int chan) {
    int keep[3] = {err_fd, status_fd, chan}, n = 0, k[3];
    for (int i = 0; i < 3; i++)
        if (keep[i] >= 0) k[n++] = keep[i];
    for (int i = 0; i < n; i++) /* sort (at most three) */
        for (int j = i + 1; j < n; j++)
            if (k[j] < k[i]) { int t = k[i]; k[i] = k[j]; k[j] = t; }
    unsigned next = 0;
    for (int i = 0; i < n; i++) {
        if (k[i] > 0) {
            int e = close_between(next, (unsigned)k[i] - 1);
            if (e) return e;
        }
        next = (unsigned)k[i] + 1;
    }
    return close_between(next, ~0U);
}

static struct cjail_spec launch_spec; /* lives until execve */

int child_warm_jail_finish(const struct cjail_spec *template, int chan, struct cjail_spec **out) {
    struct cjail_warm_jail_launch msg;
    int fd[CJAIL_WARM_JAIL_FD_COUNT], got = 0;
    for (int r = 0; r < CJAIL_WARM_JAIL_FD_COUNT; r++) fd[r] = -1;
    int recv_fds[CJAIL_WARM_JAIL_FD_COUNT];
    long n = cjail_recv_with_fds(chan, &msg, sizeof msg, 0, recv_fds, CJAIL_WARM_JAIL_FD_COUNT, &got);
    if (n == 0) _exit(0); /* the spawner is gone or discarded us: nothing to report */
    if (n < 0) return (int)-n;
    if ((size_t)n != sizeof msg || msg.magic != CJAIL_SPAWN_MAGIC ||
        got != __builtin_popcount(msg.fd_mask & ((1u << CJAIL_WARM_JAIL_FD_COUNT) - 1)))
        return EPROTO;
    for (int r = 0, i = 0; r < CJAIL_WARM_JAIL_FD_COUNT; r++)
        if (msg.fd_mask & (1u << r)) fd[r] = recv_fds[i++];
    struct stat st;
    if (fd[CJAIL_WARM_JAIL_FD_BLOB] < 0 || fstat(fd[CJAIL_WARM_JAIL_FD_BLOB], &st) < 0 || msg.blob_len == 0 ||
        (uint64_t)st.st_size < msg.blob_len)
        return EPROTO;
    void *blob = mmap(NULL, (size_t)msg.blob_len, PROT_READ, MAP_PRIVATE, fd[CJAIL_WARM_JAIL_FD_BLOB], 0);
    if (blob == MAP_FAILED) return errno;
    if (cjail_spec_unpack(blob, (size_t)msg.blob_len, &launch_spec) != 0) return EINVAL;
    /* The spawner matched the launch to this jail by its launch-independent part; the count
     * of ops already done must agree, or phase B would skip or repeat some. */
    if (launch_spec.static_mount_count != template->static_mount_count) return EINVAL;
    /* The program directories the spawner resolved, as detached mount trees (child_mounts.c). */
    for (int k = 0; k < CJAIL_MAX_TREES; k++) {
        int32_t op = msg.tree_op[k];
        int tree = fd[CJAIL_WARM_JAIL_FD_TREE + k];
        if ((op < 0) != (tree < 0) || (op >= 0 && ((uint32_t)op < launch_spec.static_mount_count || (uint32_t)op >= launch_spec.mount_count)))
            return EPROTO;
        if (op >= 0) ((struct cjail_mount_op *)launch_spec.mounts)[op].source_fd = tree;
    }
    launch_spec.stdin_fd = fd[CJAIL_WARM_JAIL_FD_STDIN];
    launch_spec.stdout_fd = fd[CJAIL_WARM_JAIL_FD_STDOUT];
    launch_spec.stderr_fd = fd[CJAIL_WARM_JAIL_FD_STDERR];
    launch_spec.bridge_fd = fd[CJAIL_WARM_JAIL_FD_BRIDGE];
    launch_spec.netns_fd = -1;
    if (fd[CJAIL_WARM_JAIL_FD_TRACE] >= 0) {
        void *t = mmap(NULL, sizeof(uint64_t) * CJAIL_TRACE_SLOTS, PROT_READ | PROT_WRITE, MAP_SHARED, fd[CJAIL_WARM_JAIL_FD_TRACE], 0);
        if (t != MAP_FAILED) launch_spec.trace = t;
    }
    *out = &launch_spec;
    return 0;
}
