/* Child: capabilities. The bounding set is emptied and the securebits locked while we still hold
 * CAP_SETPCAP, so that no later execve (of a setuid or file-capability binary) can regain
 * anything; then the permitted/effective/inheritable sets are emptied with a raw capset and the
 * ambient set cleared. In rootless mode these are the capabilities of the user namespace. */
#define _GNU_SOURCE
#include "child_internal.h"
#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int child_caps_bounding(void) {
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) break; /* past CAP_LAST_CAP of this kernel */
            return errno;
        }
    }
    return 0;
}

/* NOROOT: uid 0 gains no capabilities at execve; NO_SETUID_FIXUP: uid changes do not touch
 * capabilities (we clear them explicitly); NO_CAP_AMBIENT_RAISE; all locked. */
int child_securebits(void) {
    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                         SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    return prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0 ? errno : 0;
}

int child_caps_clear(void) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
    if (syscall(SYS_capset, &hdr, data) < 0) return errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) return errno;
    return 0;
}
