/* Parent: clone the jailed child and run the go / error-pipe protocol (see cjail.h). cjail_clone
 * and cjail_go run in the spawner process (spawner_server.c); cjail_wait_exec and the small
 * helpers below in the daemon. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h> /* memfd_create, mmap */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int cjail_child_main(const struct cjail_spec *s, int go_fd, int err_fd, int status_fd);
int cjail_warm_jail_main(const struct cjail_spec *template, int go_fd, int err_fd, int status_fd, int chan);

#define STACK_SIZE (256 * 1024)

struct trampoline {
    const struct cjail_spec *spec;
    int go_fd, err_fd, status_fd;
    int chan; /* >= 0: a warm jail (cjail_warm_jail_main) */
    /* The parent's ends of the same pipes and channel. Closed first: a child holding the write
     * end of its own go pipe would never see EOF there if the spawner died before "go" (it
     * would wait forever), nor EOF on its channel if it held the spawner's end of that. */
    int parent_ends[4];
};

/* The spawner's socket to the daemon (spawner_server.c sets it): no child may keep it open,
 * or the daemon could still send to a spawner that died, and wait for an answer forever. */
int cjail_spawner_main_socket = -1;

/* Set by the spawner before it clones a warm jail that is to be made in the background: the
 * jail lowers itself to nice 19 as its first act. The spawner itself stays at its own priority
 * through the clone: at nice 19 on a loaded machine, a spawner preempted inside clone(2) waited
 * for the CPU for milliseconds while the next launch's request sat in its socket. */
int cjail_warm_jail_nice19 = 0;

static int trampoline_fn(void *arg) {
    struct trampoline *t = arg;
    for (int i = 0; i < 4; i++)
        if (t->parent_ends[i] >= 0) close(t->parent_ends[i]);
    if (cjail_spawner_main_socket >= 0) close(cjail_spawner_main_socket);
    if (t->chan >= 0 && cjail_warm_jail_nice19) (void)setpriority(PRIO_PROCESS, 0, 19);
    if (t->chan >= 0) return cjail_warm_jail_main(t->spec, t->go_fd, t->err_fd, t->status_fd, t->chan);
    return cjail_child_main(t->spec, t->go_fd, t->err_fd, t->status_fd);
}

/* Keep our pipe ends above 0..3 so the child's dup2 onto 0..3 cannot clobber them. */
static int high_cloexec(int fd) {
    if (fd < 0 || fd >= 10) return fd;
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return h;
}

static int make_pipe(int p[2]) {
    if (pipe2(p, O_CLOEXEC) < 0) return -errno;
    p[0] = high_cloexec(p[0]);
    p[1] = high_cloexec(p[1]);
    if (p[0] < 0 || p[1] < 0) return -EMFILE;
    return 0;
}

static void close_pair(int p[2]) {
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
}

static int do_clone(const struct cjail_spec *spec, struct trampoline *t, int *pidfd) {
    void *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -errno;
    /* All signals blocked across clone: a handler of the Swift runtime must never run in the
     * child (it would touch parent state); the child restores defaults before execve. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int flags = (int)spec->clone_flags | CLONE_PIDFD | SIGCHLD;
    int pid = clone(trampoline_fn, (char *)stack + STACK_SIZE, flags, t, pidfd);
    int e = pid < 0 ? -errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, STACK_SIZE); /* the child has its own copy: no CLONE_VM */
    return e ? e : pid;
}

static int clone_with(const struct cjail_spec *spec, struct cjail_child *out, int chan, int parent_chan) {
    int go[2] = {-1, -1}, err[2] = {-1, -1}, st[2] = {-1, -1};
    int e = make_pipe(go);
    if (!e) e = make_pipe(err);
    if (!e && spec->reaper) e = make_pipe(st);
    if (e) goto fail;
    struct trampoline t = {spec, go[0], err[1], st[1], chan, {go[1], err[0], st[0], parent_chan}};
    int pidfd = -1;
    int pid = do_clone(spec, &t, &pidfd);
    if (pid < 0) {
        e = pid;
        goto fail;
    }
    close(go[0]);
    close(err[1]);
    if (st[1] >= 0) close(st[1]);
    *out = (struct cjail_child){pid, pidfd, go[1], err[0], st[0]};
    return 0;
fail:
    close_pair(go);
    close_pair(err);
    close_pair(st);
    return e;
}

int cjail_clone(const struct cjail_spec *spec, struct cjail_child *out) { return clone_with(spec, out, -1, -1); }

int cjail_clone_warm_jail(const struct cjail_spec *template, struct cjail_child *out, int *chan) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    int theirs = high_cloexec(sv[1]);
    if (theirs < 0) {
        close(sv[0]);
        return -EMFILE;
    }
    int e = clone_with(template, out, theirs, sv[0]);
    close(theirs);
    if (e) {
        close(sv[0]);
        return e;
    }
    *chan = sv[0];
    return 0;
}

int cjail_go(struct cjail_child *c) {
    char g = 'G';
    ssize_t w;
    do { w = write(c->go_fd, &g, 1); } while (w < 0 && errno == EINTR);
    int werr = w < 0 ? errno : 0;
    close(c->go_fd);
    c->go_fd = -1;
    return -werr;
}

int cjail_wait_exec(int err_fd, struct cjail_error *rec) {
    size_t got = 0;
    while (got < sizeof *rec) {
        ssize_t n = read(err_fd, (char *)rec + got, sizeof *rec - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(err_fd);
    if (got == 0) return 0; /* EOF: the program was exec'd */
    if (got != sizeof *rec || rec->magic != CJAIL_ERROR_MAGIC) {
        *rec = (struct cjail_error){CJAIL_ERROR_MAGIC, CJAIL_STEP_NONE, EPROTO, -1};
    }
    return 1;
}

int cjail_landlock_abi(void) {
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return v < 0 ? 0 : (int)v;
}

int cjail_pidfd_send_signal(int pidfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int cjail_waitid_pidfd(int pidfd, int options, int32_t *code, int32_t *status) {
    siginfo_t si = {0};
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, options) < 0) return -errno;
    *code = si.si_pid == 0 ? 0 : si.si_code;
    *status = si.si_status;
    return si.si_pid;
}

int cjail_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }

int cjail_trace_memfd(const char *name) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    if (ftruncate(fd, (off_t)(sizeof(uint64_t) * CJAIL_TRACE_SLOTS)) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

#define CJAIL_SPEC_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

int cjail_sealed_memfd(const char *name, const void *data, size_t len) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { int e = n < 0 ? errno : EIO; close(fd); return -e; }
        off += (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, CJAIL_SPEC_SEALS) < 0) { int e = errno; close(fd); return -e; }
    return fd;
}

int cjail_memfd_is_sealed(int fd) {
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 && (seals & CJAIL_SPEC_SEALS) == CJAIL_SPEC_SEALS;
}

int cjail_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

int cjail_thread_background(void) {
    /* Linux keeps a nice value per thread: PRIO_PROCESS with the thread's id. */
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0 ? -errno : 0;
}
