/* Starting a helper: posix_spawn (CLONE_VM|CLONE_VFORK: nothing of the daemon's memory is
 * copied) with only the descriptors it is meant to have. A descriptor of the daemon leaking
 * into a helper that may be compromised (the control socket, the state directory) would hand
 * it what its jail withholds. */
#define _GNU_SOURCE
#include "chelper.h"
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

int chelper_spawn(const char *path, char *const argv[], char *const envp[], const int32_t *fds, uint32_t nfds,
                  int32_t *pid_out, int32_t *sock_out) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* dup2 clears CLOEXEC on the copies. The sources may sit on 3, 4…: dup2 onto itself keeps
     * CLOEXEC, so every source is first copied above all of them (no copy can land on a
     * source not yet copied). */
    int high = sv[1] > 3 + (int)nfds ? sv[1] : 3 + (int)nfds;
    for (uint32_t i = 0; i < nfds; i++) if (fds[i] > high) high = fds[i];
    high += 1;
    posix_spawn_file_actions_adddup2(&fa, sv[1], high + (int)nfds);
    for (uint32_t i = 0; i < nfds; i++) posix_spawn_file_actions_adddup2(&fa, fds[i], high + (int)i);
    posix_spawn_file_actions_adddup2(&fa, high + (int)nfds, 3);
    for (uint32_t i = 0; i < nfds; i++) posix_spawn_file_actions_adddup2(&fa, high + (int)i, 4 + (int)i);
    posix_spawn_file_actions_addclosefrom_np(&fa, 4 + (int)nfds);
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
