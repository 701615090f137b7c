/* Child: the filesystem view. A tmpfs root populated by an explicit list of operations planned
 * by the parent (JailMountPlan.swift), then pivot_root. Nothing of the host is visible except
 * what the list binds (bubblewrap's model: parse → validate → execute, the execution here). */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int err_or_zero(long r) { return r < 0 ? errno : 0; }

/* Mount events must not propagate back to the host (a shared "/" would leak our binds, and the
 * host's later mounts would appear in the jail). */
int child_mount_private(void) { return err_or_zero(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)); }

int child_mount_root(const struct cjail_spec *s) {
    unsigned long fl = MS_NOSUID | MS_NODEV;
    return err_or_zero(mount("tmpfs", s->root_path, "tmpfs", fl, s->root_options));
}

static int make_mountpoint(const char *target, int is_dir) {
    if (is_dir) {
        if (mkdir(target, 0755) < 0 && errno != EEXIST) return errno;
        return 0;
    }
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return errno == EEXIST ? 0 : errno;
    close(fd);
    return 0;
}

/* A plain MS_REMOUNT|MS_RDONLY is not recursive, so submounts of a bind (e.g. a mount below
 * /usr) would stay writable; mount_setattr(AT_RECURSIVE) applies to the whole tree. */
/* A source the spawner resolved itself arrives as a detached mount tree (spawner_template.c):
 * attached as it is, so no path is looked up again here (a directory swapped for a symlink
 * after the spawner's check would otherwise be followed). */
static int bind_op(const struct cjail_mount_op *op) {
    int e = make_mountpoint(op->target, op->source_is_dir);
    if (e) return e;
    if (op->source_fd >= 0) {
        if (syscall(SYS_move_mount, op->source_fd, "", AT_FDCWD, op->target, MOVE_MOUNT_F_EMPTY_PATH) < 0) return errno;
    } else if (mount(op->source, op->target, NULL, MS_BIND | MS_REC, NULL) < 0) {
        return errno;
    }
    if (op->attr_set == 0) return 0;
    struct mount_attr attr = {.attr_set = op->attr_set};
    long r = syscall(SYS_mount_setattr, AT_FDCWD, op->target, AT_RECURSIVE, &attr, sizeof attr);
    return err_or_zero(r);
}

static int file_op(const struct cjail_mount_op *op) {
    int fd = open(op->target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, op->mode);
    if (fd < 0) return errno;
    size_t off = 0;
    while (off < op->data_len) {
        ssize_t n = write(fd, op->data + off, op->data_len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            return e;
        }
        off += (size_t)n;
    }
    close(fd);
    return 0;
}

/* Masks a host-identifying entry of the fresh /proc (runc's maskedPaths): the kernel's command
 * line and boot id name the host across every worker and jail, so a program that reads them
 * can tell which machine (and which boot) it shares with other programs, and link its reports
 * to one host. The bind is never nodev: on a nodev mount, opening the bound /dev/null fails
 * EACCES, which is what an earlier bind over /proc/cmdline made read-only with the ordinary
 * bind attributes (nosuid, nodev) met. The mountpoint is never created or opened for writing
 * (it exists; opening proc entries for writing can act on the kernel). Not MS_REC: a device
 * node has no submounts. A directory gets an empty read-only tmpfs. */
static int mask_op(const struct cjail_mount_op *op) {
    if (op->source_is_dir)
        return err_or_zero(mount("tmpfs", op->target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0555"));
    if (mount(op->source, op->target, NULL, MS_BIND, NULL) < 0) return errno;
    struct mount_attr attr = {.attr_set = op->attr_set};
    return err_or_zero(syscall(SYS_mount_setattr, AT_FDCWD, op->target, 0, &attr, sizeof attr));
}

static int one_op(const struct cjail_mount_op *op) {
    switch (op->kind) {
    case CJAIL_MNT_DIR:
        /* umask is 0 while the ops run (child_mount_ops), so the mode is exact. */
        if (mkdir(op->target, op->mode) < 0) return errno == EEXIST ? err_or_zero(chmod(op->target, op->mode)) : errno;
        return 0;
    case CJAIL_MNT_BIND:
        return bind_op(op);
    case CJAIL_MNT_TMPFS: {
        int e = make_mountpoint(op->target, 1);
        if (e) return e;
        return err_or_zero(mount("tmpfs", op->target, "tmpfs", (unsigned long)op->attr_set, op->data));
    }
    case CJAIL_MNT_PROC: {
        int e = make_mountpoint(op->target, 1);
        if (e) return e;
        return err_or_zero(mount("proc", op->target, "proc", (unsigned long)op->attr_set, NULL));
    }
    case CJAIL_MNT_SYMLINK:
        return err_or_zero(symlink(op->data, op->target));
    case CJAIL_MNT_FILE:
        return file_op(op);
    case CJAIL_MNT_SETATTR: {
        struct mount_attr attr = {.attr_set = op->attr_set};
        return err_or_zero(syscall(SYS_mount_setattr, AT_FDCWD, op->target, AT_RECURSIVE, &attr, sizeof attr));
    }
    case CJAIL_MNT_MASK:
        return mask_op(op);
    default:
        return EINVAL;
    }
}

/* umask 0 while building the tree: every mode is the plan's exactly (no chmod after each
 * mkdir); the inherited umask is back before anything else runs. */
int child_mount_ops(const struct cjail_spec *s, uint32_t from, uint32_t to, int32_t *index) {
    mode_t old = umask(0);
    for (uint32_t i = from; i < to && i < s->mount_count; i++) {
        int e = one_op(&s->mounts[i]);
        if (e) {
            *index = (int32_t)i;
            umask(old);
            return e;
        }
    }
    umask(old);
    return 0;
}

/* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves no path back
 * to the host tree (a chroot would: CVE-style chroot escapes via fchdir/.. do not apply). */
int child_pivot_root(const struct cjail_spec *s) {
    if (chdir(s->root_path) < 0) return errno;
    if (syscall(SYS_pivot_root, ".", ".") < 0) return errno;
    if (umount2(".", MNT_DETACH) < 0) return errno;
    return err_or_zero(chdir("/"));
}

/* The root tmpfs only holds mountpoints and generated /etc files: make it read-only so the
 * program cannot plant files next to them. */
int child_root_readonly(void) {
    return err_or_zero(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL));
}
