// Everything is inline in CBenchShims.h; SwiftPM wants one source file per C target.
#include "CBenchShims.h"
