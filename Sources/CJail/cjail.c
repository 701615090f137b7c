#include "cjail.h"
int cjail_version(void) { return 1; }
