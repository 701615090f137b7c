/* The spawner's pool of network namespaces, for cold launches that would make theirs in the
 * clone (CLONE_NEWNET) because their daemon passed none: a dropped daemon cannot make them
 * (unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN), so without this pool its cold launches paid the
 * ~0.4 ms of a new namespace inside the spawner's clone call, which a root daemon's own pool
 * (NetNamespacePool.swift) keeps off that path.
 *
 * Each namespace is made by the spawner itself (unshare, loopback up, a descriptor kept, back
 * to its own namespace: cjail_netns_create), after a launch has exec'd and never during one,
 * and is used by exactly one worker: what that worker gets is what CLONE_NEWNET would give it,
 * only `lo`, up. Any failure disables the pool: launches then clone with CLONE_NEWNET again. */
#define _GNU_SOURCE
#include "include/cjail.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define NETNS_POOL 2

static int pool[NETNS_POOL];
static int ready, disabled, home = -1;

/* A ready namespace (the caller owns it), or -1. */
int spawner_netns_take(void) {
    if (ready == 0) return -1;
    int fd = pool[0];
    for (int i = 1; i < ready; i++) pool[i - 1] = pool[i];
    ready--;
    return fd;
}

/* Whether the pool is below its size (and may still be filled). */
int spawner_netns_wanted(void) { return !disabled && ready < NETNS_POOL && geteuid() == 0; }

/* Fills the pool up. */
void spawner_netns_refill(void) {
    if (home < 0 && !disabled) home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) disabled = 1;
    while (spawner_netns_wanted()) {
        int fd = cjail_netns_create(home);
        if (fd == -EDEADLK) _exit(1); /* stuck in the new namespace: never serve from it */
        if (fd < 0) { disabled = 1; return; }
        pool[ready++] = fd;
    }
}
