/* Child: the new network namespace has only a loopback device, and it starts down. Bring it up
 * so programs may talk to themselves on 127.0.0.1; nothing else exists to reach. Also the
 * parent helper that makes such namespaces ahead of time (creating one costs ~1 ms). */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int child_loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int e = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) e = errno;
    if (!e) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) e = errno;
    }
    close(fd);
    return e;
}

/* Parent side (pool of network namespaces, see cjail.h). Runs on a dedicated supervisor thread:
 * the network namespace is per thread, so the other threads never see the new one. */
int cjail_netns_create(int home_fd) {
    if (unshare(CLONE_NEWNET) < 0) return -errno;
    int e = child_loopback_up();
    int fd = e ? -1 : open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (!e && fd < 0) e = errno;
    if (fd >= 0 && fd < 10) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
        if (high < 0) e = errno;
        close(fd);
        fd = high;
    }
    if (setns(home_fd, CLONE_NEWNET) < 0) {
        if (fd >= 0) close(fd);
        return -EDEADLK;
    }
    if (e) {
        if (fd >= 0) close(fd);
        return -e;
    }
    return fd;
}
