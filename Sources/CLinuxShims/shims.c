#include "clinux_shims.h"
int clinux_shims_version(void) { return 1; }
