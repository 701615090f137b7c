/* The child side: ONE ordered list of steps from "go" to execve, in two phases (A: namespaces
 * and the launch-independent part of the tree; B: the rest), so that a warm jail can run A
 * ahead of time (child_warm_jail.c). Order matters and each position is deliberate:
 *  - not dumpable right after "go", before any setup step: from then on ptrace and
 *    /proc/PID/mem of the half-configured child (which still holds a copy of the parent's memory
 *    image) need CAP_SYS_PTRACE. It cannot come before "go": the rootless parent writes
 *    /proc/PID/{setgroups,gid_map,uid_map}, and a non-dumpable process's /proc files belong to
 *    root, so those writes would fail. Until "go" the child runs only a blocking read; whoever
 *    could ptrace it then (same uid and credentials, both dumpable) can already ptrace the
 *    daemon itself, so nothing more is exposed, and jailed programs cannot reach it (pid
 *    namespaces, seccomp denies ptrace). execve of the program resets dumpable as usual;
 *  - /proc is mounted (in child_mount_ops) before pivot_root: a user namespace may only mount a
 *    new procfs while a fully visible one exists in its mount namespace;
 *  - the bounding set is dropped and securebits locked while we still hold CAP_SETPCAP;
 *  - uid last among the id changes (setgroups/setgid need privilege), PDEATHSIG after it
 *    (any uid change clears it);
 *  - fds before rlimits: the parent's descriptor table (inherited whole) may already hold more
 *    descriptors than the worker's RLIMIT_NOFILE, and dup would then fail with EMFILE;
 *  - seccomp last: everything before it needs syscalls the filter denies (mount, setns…);
 *  - the cgroup namespace is made in phase B, once the child is in the worker's cgroups (a warm
 *    jail is attached only when it is given a launch), so its root is the worker's cgroup.
 */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STEP(id, expr)                                                                         \
    do {                                                                                       \
        int32_t idx_ = -1;                                                                     \
        int32_t *index = &idx_;                                                                \
        (void)index;                                                                           \
        int e_ = (expr);                                                                       \
        if (e_ != 0) {                                                                         \
            child_report(err_fd, (id), e_, idx_);                                              \
            _exit(127);                                                                        \
        }                                                                                      \
        trace_step(s, (id));                                                                   \
    } while (0)

/* Profiling only (spec->trace set by the parent when MINIAPP_JAIL_TRACE is on). */
static void trace_step(const struct cjail_spec *s, int step) {
    if (s->trace == NULL) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO; async-signal-safe */
    s->trace[step] = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int errno_of(long r) { return r < 0 ? (errno ? errno : EIO) : 0; }

static int wait_go(int go_fd) {
    char b = 0;
    for (;;) {
        ssize_t n = read(go_fd, &b, 1);
        if (n == 1) break;
        if (n < 0 && errno == EINTR) continue;
        return n == 0 ? ECANCELED : errno; /* parent gave up: never continue half-configured */
    }
    close(go_fd);
    return b == 'G' ? 0 : ECANCELED;
}

static int set_hostname(const char *name) {
    if (name == NULL || name[0] == 0) return 0;
    return errno_of(sethostname(name, strlen(name)));
}

/* The program side: the last two steps, then execve. With the reaper it runs in the vfork-style
 * child of child_reaper_spawn (sharing memory with the suspended reaper until execve). */
static int exec_program(const struct cjail_spec *s, int err_fd) {
    STEP(CJAIL_STEP_SIGNALS, child_signals_default());
    STEP(CJAIL_STEP_EXEC, child_exec(s));
    return 127; /* not reached: child_exec only returns an error */
}

struct program_args {
    const struct cjail_spec *spec;
    int err_fd;
};

static int program_entry(void *arg) {
    const struct program_args *a = arg;
    _exit(exec_program(a->spec, a->err_fd)); /* only on failure: the record is written */
}

/* Phase A: namespaces and the launch-independent part of the tree (mount ops [0, K), K =
 * static_mount_count): what a warm jail (child_warm_jail.c) does ahead of time. */
static void phase_namespaces(const struct cjail_spec *s, int err_fd) {
    STEP(CJAIL_STEP_DUMPABLE, errno_of(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)));
    STEP(CJAIL_STEP_SETSID, errno_of(setsid()));
    /* A warm jail was cloned into new pid (and user) namespaces only; it makes the others here,
     * at its own nice 19, not in the spawner's clone call: a new network namespace alone costs
     * ~0.4 ms of kernel time, which the spawner's next request would otherwise wait for. The
     * result is the same as at clone (in the same user namespace, by the same process). */
    if (s->late_unshare) STEP(CJAIL_STEP_UNSHARE, errno_of(unshare(s->late_unshare)));
    /* A pooled namespace: fresh, never used by anyone, loopback already up. Joined while we
     * still hold CAP_SYS_ADMIN; its fd is closed with every other inherited one (child_fds). */
    if (s->netns_fd >= 0) STEP(CJAIL_STEP_NETNS, errno_of(setns(s->netns_fd, CLONE_NEWNET)));
    if ((s->clone_flags | (uint64_t)s->late_unshare) & CLONE_NEWNET) STEP(CJAIL_STEP_LOOPBACK, child_loopback_up());
    STEP(CJAIL_STEP_MOUNT_PRIVATE, child_mount_private());
    STEP(CJAIL_STEP_MOUNT_ROOT, child_mount_root(s));
    STEP(CJAIL_STEP_MOUNT_OP, child_mount_ops(s, 0, s->static_mount_count, index));
    /* The bounding set is launch-independent and its ~40 drops take ~50 µs: done here, ahead
     * of time in a warm jail. Effective and permitted sets are untouched, so every later step
     * keeps the privileges it needs (CAP_SYS_ADMIN for mounts, CAP_SETPCAP for securebits). */
    STEP(CJAIL_STEP_CAPS_BOUNDING, child_caps_bounding());
}

/* Phase B: everything that depends on the launch, from the cgroup namespace (the child is in
 * the worker's cgroups by now) to execve. Does not return on success. */
static int phase_program(const struct cjail_spec *s, int err_fd, int status_fd) {
    if (s->unshare_cgroup) STEP(CJAIL_STEP_CGROUP_NS, errno_of(unshare(CLONE_NEWCGROUP)));
    STEP(CJAIL_STEP_MOUNT_OP, child_mount_ops(s, s->static_mount_count, s->mount_count, index));
    STEP(CJAIL_STEP_PIVOT_ROOT, child_pivot_root(s));
    if (s->root_readonly) STEP(CJAIL_STEP_ROOT_READONLY, child_root_readonly());
    STEP(CJAIL_STEP_HOSTNAME, set_hostname(s->hostname));
    STEP(CJAIL_STEP_FDS, child_fds(s, &err_fd, &status_fd, index));
    STEP(CJAIL_STEP_RLIMITS, child_rlimits(s, index));
    STEP(CJAIL_STEP_CHDIR, errno_of(chdir(s->workdir ? s->workdir : "/")));
    STEP(CJAIL_STEP_SECUREBITS, child_securebits());
    if (!s->skip_setgroups) STEP(CJAIL_STEP_SETGROUPS, child_setgroups());
    STEP(CJAIL_STEP_SETGID, child_setgid(s->gid));
    STEP(CJAIL_STEP_SETUID, child_setuid(s->uid));
    STEP(CJAIL_STEP_CAPS_CLEAR, child_caps_clear());
    if (s->pdeathsig > 0)
        STEP(CJAIL_STEP_PDEATHSIG, errno_of(prctl(PR_SET_PDEATHSIG, s->pdeathsig, 0, 0, 0)));
    STEP(CJAIL_STEP_NO_NEW_PRIVS, errno_of(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)));
    if (s->landlock_abi > 0) STEP(CJAIL_STEP_LANDLOCK, child_landlock(s, index));
    STEP(CJAIL_STEP_SECCOMP, child_seccomp(s, index));
    if (s->reaper) {
        struct program_args a = {s, err_fd};
        STEP(CJAIL_STEP_REAPER_FORK, child_reaper_spawn(program_entry, &a, err_fd, status_fd));
    }
    return exec_program(s, err_fd);
}

/* Entry point of the cloned child (see cjail.h for the protocol). */
int cjail_child_main(const struct cjail_spec *s, int go_fd, int err_fd, int status_fd) {
    trace_step(s, CJAIL_STEP_NONE); /* slot 0: the child runs */
    /* PID 1 never execs: name it for ps/top instead of inheriting the spawner's name. */
    (void)prctl(PR_SET_NAME, "miniapp-init", 0, 0, 0);
    STEP(CJAIL_STEP_WAIT_GO, wait_go(go_fd));
    phase_namespaces(s, err_fd);
    return phase_program(s, err_fd, status_fd);
}

/* Entry point of a warm jail: phase A now on `template`, then (child_warm_jail_finish) the spec
 * of the launch it is given, and phase B on that. `chan` is its end of the spawner's channel. */
int cjail_warm_jail_main(const struct cjail_spec *template, int go_fd, int err_fd, int status_fd, int chan) {
    const struct cjail_spec *s = template;
    (void)prctl(PR_SET_NAME, "miniapp-init", 0, 0, 0);
    STEP(CJAIL_STEP_WAIT_GO, wait_go(go_fd));
    /* Only its own descriptors: it was cloned from the spawner, whose socket to the daemon a
     * warm jail must not keep open (the daemon would never see the spawner's EOF). */
    STEP(CJAIL_STEP_FDS, child_keep_fds(err_fd, status_fd, chan));
    phase_namespaces(template, err_fd);
    struct cjail_spec *launch = NULL;
    STEP(CJAIL_STEP_WARM_JAIL_FINISH, child_warm_jail_finish(template, chan, &launch));
    /* (Cloned at nice 19; spawner_warm.c set it back to the spawner's own before the launch.) */
    s = launch;
    trace_step(s, CJAIL_STEP_NONE);
    return phase_program(launch, err_fd, status_fd);
}
