/* Privileged, outside any jail: a program's /data volume (an ext4 image, one file per program)
 * attached to a loop device and mounted on its data directory. The kernel then enforces the
 * volume's size and inode count: a full /data is ENOSPC inside that filesystem, never on the
 * state filesystem the daemon and every other program share.
 *
 * Kept in C and apart from the daemon's code on purpose: it is one of the few operations that
 * need CAP_SYS_ADMIN in the initial namespaces (loop devices, mounting ext4), so a privileged
 * helper (the spawner) can own it with exactly these checked inputs: two descriptors, no paths
 * to resolve (a path could be swapped for a symlink between check and use). */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A loop device already backed by this very file (same device and inode), or -1. Two loop
 * devices over one image would mean two ext4 superblocks writing the same blocks (silent
 * corruption): a worker's mount namespace can still hold the previous mount (and so its loop
 * device, auto-cleared only when that goes) when the daemon restarts and mounts again. Mounting
 * the SAME block device twice shares one superblock, which is safe. */
static int existing_loop(const struct stat *img) {
    DIR *d = opendir("/sys/block");
    if (d == NULL) return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d)) != NULL) {
        int n;
        if (sscanf(e->d_name, "loop%d", &n) != 1 || n < 0) continue;
        char dev[32];
        snprintf(dev, sizeof dev, "/dev/loop%d", n);
        int fd = open(dev, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        struct loop_info64 info;
        memset(&info, 0, sizeof info);
        if (ioctl(fd, LOOP_GET_STATUS64, &info) == 0 && info.lo_inode == (uint64_t)img->st_ino &&
            info.lo_device == (uint64_t)img->st_dev)
            found = n;
        close(fd);
    }
    closedir(d);
    return found;
}

/* A free loop device configured over `image_fd` with autoclear (it detaches itself when its
 * last user goes), or -errno; *dev_fd stays open: autoclear also fires at the last close, so
 * it must be held until the mount holds the device. Another process may take the free device
 * first: retried. */
static int new_loop(int image_fd, int *dev_fd) {
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) return -errno;
    int result = -EBUSY;
    for (int attempt = 0; attempt < 16 && result == -EBUSY; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) { result = -errno; break; }
        char dev[32];
        snprintf(dev, sizeof dev, "/dev/loop%d", n);
        int fd = open(dev, O_RDWR | O_CLOEXEC);
        if (fd < 0) { result = -errno; break; }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fd = (uint32_t)image_fd;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        result = ioctl(fd, LOOP_CONFIGURE, &cfg) == 0 ? n : -errno;
        if (result >= 0) *dev_fd = fd;
        else close(fd);
    }
    close(ctl);
    return result;
}

/* Mounts /dev/loopN on the directory `target_fd`: 0 or errno. */
static int mount_loop(int n, int target_fd) {
    char dev[32], target[64];
    snprintf(dev, sizeof dev, "/dev/loop%d", n);
    /* Through the descriptor: the directory checked by the caller is the one mounted on.
     * nosuid and nodev: the image is the program's to fill, never a way to a setuid file or a
     * device. */
    snprintf(target, sizeof target, "/proc/self/fd/%d", target_fd);
    /* noinit_itable: no lazy zeroing of inode tables by the kernel (through a loop device a
     * zero-out becomes a punched hole in the preallocated image; see DataVolume.swift). */
    return mount(dev, target, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, "errors=remount-ro,noinit_itable") == 0 ? 0 : errno;
}

int cjail_volume_mount(int image_fd, int target_fd, int *loop_index) {
    struct stat img, dir;
    if (fstat(image_fd, &img) < 0 || fstat(target_fd, &dir) < 0) return errno;
    if (!S_ISREG(img.st_mode)) return EINVAL;
    if (!S_ISDIR(dir.st_mode)) return ENOTDIR;
    for (int attempt = 0;; attempt++) {
        int dev_fd = -1;
        int n = existing_loop(&img);
        if (n < 0) n = new_loop(image_fd, &dev_fd);
        if (n < 0) return -n;
        int e = mount_loop(n, target_fd);
        /* Mounted: the mount holds the device now. Not mounted: the close detaches it. */
        if (dev_fd >= 0) close(dev_fd);
        if (e == 0) *loop_index = n;
        if (e == 0 || dev_fd >= 0 || attempt >= 100 || (e != EIO && e != ENXIO)) return e;
        /* A device found backed by the image whose last mount has just gone (a daemon's
         * restart detaches its volumes) is being detached by autoclear, after the unmount
         * returned: mounting it fails EIO. Wait for it to go, then take a fresh one (1 s at
         * most). */
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}
