#define _GNU_SOURCE
#include "clinux_shims.h"

#include <sys/signalfd.h>
#include <unistd.h>

int clinux_signalfd(const sigset_t *sigs) { return signalfd(-1, sigs, SFD_CLOEXEC); }

int clinux_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}
