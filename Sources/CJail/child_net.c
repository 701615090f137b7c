/* Child: the new network namespace has only a loopback device, and it starts down. Bring it up
 * so programs may talk to themselves on 127.0.0.1; nothing else exists to reach. */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
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
