#define _GNU_SOURCE
#include "clinux_shims.h"

#include <sys/signalfd.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <errno.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

int clinux_signalfd(const sigset_t *sigs) { return signalfd(-1, sigs, SFD_CLOEXEC); }

int clinux_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}

int clinux_thread_fs_identity(unsigned int uid, unsigned int gid, const unsigned int *groups, int ngroups) {
    if (syscall(SYS_setgroups, (size_t)ngroups, groups) != 0) return -1;
    /* setfsgid/setfsuid return the previous value and never fail visibly: ask again to check. */
    setfsgid(gid);
    if ((unsigned int)setfsgid((gid_t)-1) != gid) { errno = EPERM; return -1; }
    setfsuid(uid);
    if ((unsigned int)setfsuid((uid_t)-1) != uid) { errno = EPERM; return -1; }
    return 0;
}

int clinux_drop_bounding_set(void) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break; /* past the kernel's last capability */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) return -errno;
    }
    return 0;
}

/* --- The bounding set on every thread ---------------------------------------------------
 * The bounding set is per thread and PR_CAPBSET_DROP reaches only the caller; setresuid reaches
 * every thread only because glibc broadcasts it with a signal (SIGSETXID). A thread left out
 * (a pool's thread started before the drop) keeps the full set, and so does every thread it
 * creates later: an execve from it would regain capabilities the drop meant to be gone for good
 * (no_new_privs blocks that today; the bounding set is the layer that must not depend on it).
 * So the same broadcast for the set: a signal to every other thread, whose handler drops it
 * (prctl is a system call: async-signal-safe), repeated until /proc/self/task lists no thread
 * whose CapBnd is not 0 — which is also the check, read back from the kernel (fail closed). */

static int bset_last_cap;
static atomic_int bset_acks;

static void bset_handler(int sig) {
    (void)sig;
    int saved = errno;
    for (int cap = 0; cap <= bset_last_cap; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    atomic_fetch_add(&bset_acks, 1);
    errno = saved;
}

/* Whether thread `tid`'s bounding set is empty: 1, 0, or -1 when it is gone. */
static int bset_empty(pid_t tid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    const char *line = strstr(buf, "\nCapBnd:");
    return line && strtoull(line + 8, NULL, 16) == 0;
}

/* Signals every other thread whose set is not empty (the last one in *tid); the number
 * signalled, or -errno. */
static int bset_signal_others(int sig, int *last) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -errno;
    pid_t me = (pid_t)syscall(SYS_gettid), pid = getpid();
    int sent = 0;
    for (struct dirent *e; (e = readdir(d));) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid <= 0 || tid == me || bset_empty(tid) != 0) continue;
        if (syscall(SYS_tgkill, pid, tid, sig) == 0) { sent++; *last = (int)tid; }
    }
    closedir(d);
    return sent;
}

static int bset_signal(void) { return SIGRTMIN + 4; } /* glibc keeps SIGRTMIN-2.. for itself; the daemon uses no RT signal */

void clinux_thread_accept_broadcast(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, bset_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int clinux_drop_bounding_set_all_threads(int *stuck_tid) {
    int r = clinux_drop_bounding_set();
    if (r != 0) return r;
    while (bset_last_cap < 63 && prctl(PR_CAPBSET_READ, bset_last_cap + 1, 0, 0, 0) >= 0) bset_last_cap++;
    int sig = bset_signal();
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = bset_handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &old) < 0) return -errno;
    int result = -EAGAIN;
    for (int round = 0; round < 50; round++) { /* a thread started meanwhile is met next round */
        atomic_store(&bset_acks, 0);
        int sent = bset_signal_others(sig, stuck_tid);
        if (sent <= 0) { result = sent; *stuck_tid = 0; break; }
        for (int waited = 0; atomic_load(&bset_acks) < sent && waited < 2000; waited++) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    sigaction(sig, &old, NULL);
    return result;
}

int clinux_drop_to(unsigned int uid, unsigned int gid, const char **step) {
    gid_t g = gid;
    *step = "ambient";
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -errno;
    *step = "setgroups";
    if (setgroups(1, &g) < 0) return -errno;
    *step = "setresgid";
    if (setresgid(gid, gid, gid) < 0) return -errno;
    *step = "setresuid";
    if (setresuid(uid, uid, uid) < 0) return -errno;
    /* Leaving uid 0 already emptied permitted and effective (no SECBIT_KEEP_CAPS); capset says
     * so explicitly, and fails closed if anything is left that cannot be dropped. */
    *step = "capset";
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0, 0, 0}, {0, 0, 0}};
    if (syscall(SYS_capset, &h, d) < 0) return -errno;
    *step = "no_new_privs";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -errno;
    *step = NULL;
    return 0;
}

int clinux_confine_unprivileged(const char **step) {
    *step = "ambient";
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -errno;
    *step = "capset";
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0, 0, 0}, {0, 0, 0}};
    if (syscall(SYS_capset, &h, d) < 0) return -errno;
    *step = "no_new_privs";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -errno;
    *step = NULL;
    return 0;
}

int clinux_seccomp_install(const void *insns, unsigned long len) {
    struct sock_fprog prog = {(unsigned short)(len / sizeof(struct sock_filter)), (struct sock_filter *)insns};
    if (len == 0 || len % sizeof(struct sock_filter) != 0 || len / sizeof(struct sock_filter) > 4096) return -EINVAL;
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
    if (r < 0) return -errno;
    return r > 0 ? -ESRCH : 0; /* TSYNC: a positive result is the id of a thread that could not be synced */
}
