/* Starting a process of ours connected to the daemon by a new socket pair: the spawner and the
 * helpers for untrusted bytes. posix_spawn is glibc's CLONE_VM|CLONE_VFORK path: nothing of the
 * daemon's memory is copied, and the calling thread is the child's parent (PDEATHSIG follows
 * it). A descriptor of the daemon leaking into a child that may be compromised (the control
 * socket, the state directory) would hand it what its jail withholds: every descriptor but the
 * mapped ones is closed, and signals start unblocked at their defaults. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

/* dup2 clears CLOEXEC on the copies. The sources may sit on 3, 4…: dup2 onto itself keeps
 * CLOEXEC, so every source is first copied above all of them (no copy can land on a source not
 * yet copied), then down to 3 (the socket), 4, 5… (`fds`). */
static void map_descriptors(posix_spawn_file_actions_t *fa, int sock, const int32_t *fds, uint32_t nfds) {
    int high = sock > 3 + (int)nfds ? sock : 3 + (int)nfds;
    for (uint32_t i = 0; i < nfds; i++) if (fds[i] > high) high = fds[i];
    high += 1;
    posix_spawn_file_actions_adddup2(fa, sock, high + (int)nfds);
    for (uint32_t i = 0; i < nfds; i++) posix_spawn_file_actions_adddup2(fa, fds[i], high + (int)i);
    posix_spawn_file_actions_adddup2(fa, high + (int)nfds, 3);
    for (uint32_t i = 0; i < nfds; i++) posix_spawn_file_actions_adddup2(fa, high + (int)i, 4 + (int)i);
    posix_spawn_file_actions_addclosefrom_np(fa, 4 + (int)nfds);
}

int cjail_spawn_connected(const char *path, char *const argv[], char *const envp[], int socket_type, const int32_t *fds,
                          uint32_t nfds, int32_t *pid_out, int32_t *sock_out) {
    int sv[2];
    if (socketpair(AF_UNIX, socket_type | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    map_descriptors(&fa, sv[1], fds, nfds);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    int r = posix_spawn(&pid, path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(sv[1]);
    if (r != 0) {
        close(sv[0]);
        return -r;
    }
    *pid_out = pid;
    *sock_out = sv[0];
    return 0;
}
