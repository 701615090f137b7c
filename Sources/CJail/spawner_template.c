/* The spawner's templates and its fixed control requests (cjail.h, "Templates").
 *
 * A template is registered by whoever starts the spawner, before it locks the set; from then on
 * the set never changes. For each template the spawner holds, opened at registration:
 *  - O_PATH descriptors of the /app and /data roots (the sources of the template's binds at
 *    <root>/app and <root>/data). A launch's program directory is opened from them with
 *    openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), and the jail is
 *    given *that* directory as a detached mount (open_tree), never the path: the state directory
 *    belongs to the daemon's user, who could otherwise swap a checked directory for a symlink
 *    to / between the check and the mount (the classic bind-mount TOCTOU, cf. CVE-2019-16884,
 *    CVE-2021-30465 in runc);
 *  - the O_PATH directories worker cgroups live in: a cgroup is named, never given as a path,
 *    and the spawner opens its files itself (cgroup v1 checks the *opener's* credentials on
 *    cgroup.procs since the CVE-2021-4197 fix, so a descriptor the daemon opened would carry
 *    the daemon's rights, and a path could name any cgroup).
 * Workers the spawner cloned are remembered by pidfd: a signal request names a pid, and only a
 * live worker of ours (never pid 1, never an unrelated process that reused a number) gets it. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include "fd_passing.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BLOB (16u << 20)

struct template {
    int active;
    struct cjail_template_request req;
    void *blob;
    struct cjail_spec spec;
    int root_fd[2];              /* /app and /data roots (O_PATH), -1 */
    int cgroup_fd[CJAIL_SPAWN_MAX_PROCS];
    int cgroup_count;
};

static struct template templates[CJAIL_TEMPLATES_MAX];
static int locked;

int spawner_map_blob(int fd, uint64_t len, void **out) {
    struct stat st;
    *out = NULL;
    if (fd < 0 || len == 0 || len > MAX_BLOB || fstat(fd, &st) < 0 || (uint64_t)st.st_size < len) return -EINVAL;
    /* Sealed (shrink, grow, write, seal), or refused: a memfd its sender can still truncate
     * kills us with SIGBUS when a page of our mapping goes away, and one it can still write
     * changes the spec after we checked it (a MAP_PRIVATE mapping shows the sender's writes to
     * pages we have not touched). Sealed, the mapping is the checked bytes for good, and the
     * same memfd can be handed on (a warm jail reads its launch from it). */
    if (!cjail_memfd_is_sealed(fd)) return -EPERM;
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return -errno;
    *out = p;
    return 0;
}

void spawner_unmap_blob(void *blob, uint64_t len) {
    if (blob) munmap(blob, (size_t)len);
}

const struct template *spawner_template(uint32_t id) {
    for (int i = 0; i < CJAIL_TEMPLATES_MAX; i++)
        if (templates[i].active && templates[i].req.id == id) return &templates[i];
    return NULL;
}

const struct cjail_spec *spawner_template_spec(const struct template *t) { return &t->spec; }
const struct cjail_template_request *spawner_template_request(const struct template *t) { return &t->req; }

static void drop(struct template *t) {
    for (int r = 0; r < 2; r++)
        if (t->root_fd[r] >= 0) close(t->root_fd[r]);
    for (int i = 0; i < t->cgroup_count; i++) close(t->cgroup_fd[i]);
    cjail_spec_release(&t->spec);
    spawner_unmap_blob(t->blob, t->req.blob_len);
    memset(t, 0, sizeof *t);
}

/* The O_PATH root of the template's bind at <root>/app (r 0) or <root>/data (r 1), -1 when the
 * template has none there. */
static int open_root(const struct cjail_spec *s, const char *name) {
    size_t n = strlen(s->root_path);
    for (uint32_t j = s->static_mount_count; j < s->mount_count; j++) {
        const struct cjail_mount_op *m = &s->mounts[j];
        if (m->kind != CJAIL_MNT_BIND || !m->source || strncmp(m->target, s->root_path, n) != 0 || strcmp(m->target + n, name) != 0) continue;
        return open(m->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    return -2;
}

/* Registers a template; 0 or -errno. */
int spawner_register(const struct cjail_template_request *req, const int *fds) {
    if (locked) return -EPERM;
    if (spawner_template(req->id)) return -EEXIST;
    /* Host ids: root (or a range wrapping around to it) is never a program's. */
    if (!(req->flags & CJAIL_TEMPLATE_IDMAP) && (req->uid_min == 0 || req->uid_count == 0 || (uint64_t)req->uid_min + req->uid_count > 0xffffffffull))
        return -EINVAL;
    if ((req->flags & CJAIL_TEMPLATE_IDMAP) && (req->outside_uid != getuid() || req->outside_gid != getgid())) return -EINVAL;
    struct template *t = NULL;
    for (int i = 0; i < CJAIL_TEMPLATES_MAX && !t; i++)
        if (!templates[i].active) t = &templates[i];
    if (!t) return -ENOSPC;
    memset(t, 0, sizeof *t);
    t->root_fd[0] = t->root_fd[1] = -1;
    t->req = *req;
    int e = spawner_map_blob(fds[CJAIL_TEMPLATE_FD_BLOB], req->blob_len, &t->blob);
    if (!e && cjail_spec_unpack(t->blob, (size_t)req->blob_len, &t->spec) != 0) e = -EINVAL;
    if (e) {
        spawner_unmap_blob(t->blob, req->blob_len);
        memset(t, 0, sizeof *t);
        return e;
    }
    const char *names[2] = {"/app", "/data"};
    for (int r = 0; r < 2; r++) {
        t->root_fd[r] = open_root(&t->spec, names[r]);
        if (t->root_fd[r] == -1) { e = -errno; drop(t); return e; }
    }
    for (int r = CJAIL_TEMPLATE_FD_CGROUP; r < CJAIL_TEMPLATE_FD_COUNT; r++) {
        if (fds[r] < 0) continue;
        int fd = fcntl(fds[r], F_DUPFD_CLOEXEC, 10);
        if (fd < 0) { e = -errno; drop(t); return e; }
        t->cgroup_fd[t->cgroup_count++] = fd;
    }
    t->active = 1;
    return 0;
}

/* Opens the program directories of a checked launch from the held roots and, where the spawner
 * may (root), turns each into a detached mount tree the child attaches (child_mounts.c). The
 * trees go into trees[k] and spec->mounts[op].source_fd. 0, or -errno with *index the op. */
int spawner_resolve(const struct template *t, struct cjail_spec *spec, const struct cjail_check *ck, int trees[CJAIL_MAX_TREES], int32_t *index) {
    for (int k = 0; k < CJAIL_MAX_TREES; k++) trees[k] = -1;
    for (int k = 0; k < CJAIL_MAX_TREES && ck->tree_op[k] >= 0; k++) {
        *index = ck->tree_op[k];
        int root = t->root_fd[ck->tree_root[k]];
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
        int fd = root < 0 ? -1 : (int)syscall(SYS_openat2, root, ck->tree_rel[k], &how, sizeof how);
        if (fd < 0) return root < 0 ? -ENOENT : -errno;
        if (geteuid() != 0) { /* rootless: no privilege to guard; the child binds the checked path */
            close(fd);
            continue;
        }
        int tree = (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        int e = tree < 0 ? -errno : 0;
        close(fd);
        if (e) return e;
        /* Private: the host's later mounts below the directory must not propagate in. */
        struct mount_attr attr = {.propagation = MS_PRIVATE};
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
            e = -errno;
            close(tree);
            return e;
        }
        trees[k] = tree;
        ((struct cjail_mount_op *)spec->mounts)[ck->tree_op[k]].source_fd = tree; /* our private copy */
    }
    return 0;
}

/* ---- the workers we cloned ---- */

/* own: our child to reap (cjail_spawner_own_children), else the daemon's; exit_fd: the write
 * end of its exit channel (own only, -1 once closed); stale: of a daemon connection that ended
 * (killed, not yet gone: a frozen one dies once thawed), reaped here and never signalled again. */
static struct worker { pid_t pid; int pidfd; int exit_fd; int own; int stale; } *workers;
static size_t worker_count, worker_cap;

static int exited(int pidfd) {
    struct pollfd p = {pidfd, POLLIN, 0};
    return poll(&p, 1, 0) != 0;
}

/* Forgets worker i. Our own child is reaped first (`wait`: blocking, for one just killed) and
 * its exit reported on its pipe; 0, or -EAGAIN when it has not exited yet (kept). */
static int forget_worker(size_t i, int wait) {
    struct worker *w = &workers[i];
    if (w->own) {
        int32_t code = 0, status = 0;
        int r;
        do { r = cjail_waitid_pidfd(w->pidfd, WEXITED | (wait ? 0 : WNOHANG), &code, &status); } while (r < 0 && errno == EINTR);
        if (r == 0) return -EAGAIN;
        struct cjail_exit_record rec = {r < 0 ? -1 : code, status};
        if (w->exit_fd >= 0) {
            (void)send(w->exit_fd, &rec, sizeof rec, MSG_NOSIGNAL | MSG_DONTWAIT); /* a gone reader is not our failure */
            close(w->exit_fd);
        }
    }
    close(w->pidfd);
    workers[i] = workers[--worker_count];
    return 0;
}

/* Reaps (own children) or forgets every worker that exited. */
void spawner_reap_workers(void) {
    for (size_t i = 0; i < worker_count;) {
        if (exited(workers[i].pidfd) && forget_worker(i, 0) == 0) continue; /* i now holds the last one */
        i++;
    }
}

/* The pidfds of the workers we must reap, for the spawner's poll: up to `max`. */
int spawner_worker_pollfds(struct pollfd *out, int max) {
    int n = 0;
    for (size_t i = 0; i < worker_count && n < max; i++)
        if (workers[i].own) out[n++] = (struct pollfd){workers[i].pidfd, POLLIN, 0};
    return n;
}

size_t spawner_worker_count(void) { return worker_count; }

/* Remembers a worker we cloned (its pidfd is duplicated; `exit_fd` is the table's from now on).
 * 0, or -errno: then nothing was kept (the caller kills the worker: it could be neither
 * signalled through us nor, when it is our child, reaped and reported). */
int spawner_worker_add(pid_t pid, int pidfd, int exit_fd) {
    if (worker_count == worker_cap) spawner_reap_workers(); /* amortized: only when full */
    if (worker_count == worker_cap) {
        size_t cap = worker_cap ? worker_cap * 2 : 64;
        struct worker *w = realloc(workers, cap * sizeof *w);
        if (!w) return -ENOMEM;
        workers = w;
        worker_cap = cap;
    }
    int fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 10);
    if (fd < 0) return -errno;
    workers[worker_count++] = (struct worker){pid, fd, exit_fd, cjail_spawner_own_children, 0};
    return 0;
}

/* The daemon is gone (its socket read EOF): SIGKILL every worker we cloned that still runs
 * (and reap those that are our own children). PDEATHSIG alone is not enough once the daemon
 * has dropped its privileges: the kernel sends the parent-death signal with the dying parent's
 * credentials, and an unprivileged daemon may not signal a worker of another uid, so the signal
 * is refused and the worker would outlive the daemon; a spawner service is nobody's child. A
 * frozen worker (cgroup v1) dies once the crash guard thaws it. */
void spawner_kill_workers(void) {
    for (size_t i = 0; i < worker_count; i++) (void)syscall(SYS_pidfd_send_signal, workers[i].pidfd, SIGKILL, NULL, 0);
    for (size_t i = worker_count; i-- > 0;) {
        if (forget_worker(i, 0) == 0) continue; /* gone: reaped (own) or forgotten */
        workers[i].stale = 1; /* dying (or frozen until thawed): reaped when it is gone */
        if (workers[i].exit_fd >= 0) close(workers[i].exit_fd);
        workers[i].exit_fd = -1;
    }
}

/* No template may be added from now on (a spawner service locks its set when a daemon's
 * connection ends, so that a later connection finds the set its first daemon locked). */
void spawner_lock_templates(void) { locked = 1; }

static int signal_worker(pid_t pid, int sig) {
    const int allowed[] = {SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGSTOP, SIGCONT};
    int ok = 0;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) ok |= allowed[i] == sig;
    if (!ok || pid <= 1) return -EPERM;
    for (size_t i = 0; i < worker_count; i++) {
        if (workers[i].pid != pid || workers[i].stale) continue;
        if (syscall(SYS_pidfd_send_signal, workers[i].pidfd, sig, NULL, 0) == 0) return 0;
        int e = -errno;
        if (e == -ESRCH) (void)forget_worker(i, 0); /* kept when not yet reaped (a zombie) */
        return e;
    }
    return -ESRCH; /* not a worker of ours (or gone) */
}

/* ---- cgroups and data dirs, by name ---- */

static int write_at(int dir, const char *file, const char *text) {
    int fd = openat(dir, file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = n < 0 ? -errno : 0;
    close(fd);
    return e;
}

/* SIGKILLs every member of one cgroup directory: cgroup.kill (v2, 5.14+), else each pid of
 * cgroup.procs, repeated until it reads empty (a member forking meanwhile is caught next pass). */
static int kill_members(int dir) {
    if (write_at(dir, "cgroup.kill", "1") == 0) return 0;
    for (int pass = 0; pass < 32; pass++) {
        int fd = openat(dir, "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return -errno;
        char buf[4096];
        int any = 0;
        ssize_t n;
        char num[16];
        size_t len = 0;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] >= '0' && buf[i] <= '9' && len < sizeof num - 1) { num[len++] = buf[i]; continue; }
                if (len) { num[len] = 0; kill((pid_t)atoi(num), SIGKILL); any = 1; }
                len = 0;
            }
        }
        if (len) { num[len] = 0; kill((pid_t)atoi(num), SIGKILL); any = 1; }
        close(fd);
        if (!any) return 0;
    }
    return -EBUSY;
}

static int kill_cgroup(const struct template *t, const char *name) {
    int found = 0;
    for (int i = 0; i < t->cgroup_count; i++) {
        int d = openat(t->cgroup_fd[i], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d < 0) {
            if (errno == ENOENT) continue;
            return -errno;
        }
        found = 1;
        int e = kill_members(d);
        close(d);
        if (e) return e;
    }
    return found ? 0 : -ENOENT;
}

int spawner_template_cgroup_count(const struct template *t) { return t->cgroup_count; }

int spawner_open_procs(const struct template *t, const char name[CJAIL_NAME_MAX], int *procs) {
    for (int i = 0; i < CJAIL_SPAWN_MAX_PROCS; i++)
        if (procs[i] >= 0) return -EINVAL; /* a name, or descriptors: never both */
    if (!cjail_name_valid(name) || t->cgroup_count == 0) return -EPERM;
    for (int i = 0; i < t->cgroup_count; i++) {
        /* Opened by us (root), relative to the directory we hold, never following a link. */
        int d = openat(t->cgroup_fd[i], name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int fd = d < 0 ? -1 : openat(d, "cgroup.procs", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (d >= 0) close(d);
        if (fd < 0) {
            for (int k = 0; k < i; k++) { close(procs[k]); procs[k] = -1; }
            return -e;
        }
        procs[i] = fd;
    }
    return 0;
}

static int chown_data(const struct template *t, const char *name, uint32_t uid) {
    int host_uid_ok = (t->req.flags & CJAIL_TEMPLATE_IDMAP) ? uid == t->req.outside_uid
                                                              : (uid >= t->req.uid_min && (uint64_t)uid < (uint64_t)t->req.uid_min + t->req.uid_count);
    if (!host_uid_ok || t->root_fd[1] < 0) return -EPERM;
    int d = openat(t->root_fd[1], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0) return -errno;
    int e = 0;
    if (fchown(d, uid, uid) < 0 || fchmod(d, 0700) < 0) e = -errno;
    close(d);
    return e;
}

/* The image of a MOUNT_VOLUME: what the (unprivileged) daemon made, and nothing else it could
 * pass. A regular file only (never a block device: the loop device is ours to make), one link
 * (not a hard link to some other file of the state filesystem), mode 0600, opened read-write,
 * owned by the owner of the data root (the daemon's user after the drop) and never by root
 * unless the data root is root's (a daemon that never dropped). */
static int check_image(int image_fd, int data_root) {
    struct stat img, root;
    if (image_fd < 0 || fstat(image_fd, &img) < 0 || fstat(data_root, &root) < 0) return -EPERM;
    int fl = fcntl(image_fd, F_GETFL);
    if (!S_ISREG(img.st_mode) || img.st_nlink != 1 || (img.st_mode & 07777) != 0600 || img.st_size <= 0) return -EPERM;
    if (fl < 0 || (fl & O_ACCMODE) != O_RDWR || img.st_uid != root.st_uid) return -EPERM;
    return 0;
}

/* Loop-mounts the image on the directory `name` right under the data root (opened by us,
 * beneath the root we hold, never through a link), then removes the fresh filesystem's empty
 * lost+found (root's: the daemon could not). */
static int mount_volume(const struct template *t, const char *name, int image_fd) {
    if (t->root_fd[1] < 0) return -EPERM;
    int e = check_image(image_fd, t->root_fd[1]);
    if (e) return e;
    int d = openat(t->root_fd[1], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0) return -errno;
    int loop = -1;
    e = -cjail_volume_mount(image_fd, d, &loop);
    close(d);
    if (e) return e;
    d = openat(t->root_fd[1], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d >= 0) {
        (void)unlinkat(d, "lost+found", AT_REMOVEDIR); /* fails harmlessly once used */
        close(d);
    }
    return 0;
}

/* Detaches the mount on `name` under the data root: only when that directory is a mount's
 * root (its device differs from the data root's), so nothing else can be unmounted. */
static int unmount_volume(const struct template *t, const char *name) {
    if (t->root_fd[1] < 0) return -EPERM;
    int d = openat(t->root_fd[1], name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0) return -errno;
    struct stat st, root;
    int e = 0;
    if (fstat(d, &st) < 0 || fstat(t->root_fd[1], &root) < 0) e = -errno;
    else if (st.st_dev == root.st_dev) e = -EINVAL;
    else {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", d);
        if (syscall(SYS_umount2, path, 2 /* MNT_DETACH */) < 0) e = -errno;
    }
    close(d);
    return e;
}

/* Serves one control request; returns the result for its reply. `extra_fd`: the descriptor
 * beside the reply socket (MOUNT_VOLUME's image), -1; the caller closes it. */
int spawner_control(const struct cjail_control_request *req, int extra_fd) {
    if ((extra_fd >= 0) != (req->kind == CJAIL_CTL_MOUNT_VOLUME)) return -EPERM;
    switch (req->kind) {
    case CJAIL_CTL_LOCK:
        locked = 1;
        return 0;
    case CJAIL_CTL_SIGNAL:
        return signal_worker(req->pid, req->sig);
    case CJAIL_CTL_KILL_CGROUP:
    case CJAIL_CTL_CHOWN_DATA: {
        const struct template *t = spawner_template(req->template_id);
        if (!t || !cjail_name_valid(req->name)) return -EPERM;
        return req->kind == CJAIL_CTL_KILL_CGROUP ? kill_cgroup(t, req->name) : chown_data(t, req->name, req->uid);
    }
    case CJAIL_CTL_MOUNT_VOLUME:
    case CJAIL_CTL_UNMOUNT_VOLUME: {
        const struct template *t = spawner_template(req->template_id);
        if (!t || !cjail_name_valid(req->name)) return -EPERM;
        return req->kind == CJAIL_CTL_MOUNT_VOLUME ? mount_volume(t, req->name, extra_fd) : unmount_volume(t, req->name);
    }
    default:
        return -EPROTO;
    }
}
