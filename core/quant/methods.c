/* core/quant/methods.c — qs_method_table from the method list (methods.def). */
#include "core/quant/quant.h"

#define QS_METHOD(name, desc, ops, type) extern const qs_method_ops ops;
#include "core/quant/methods.def"
#undef QS_METHOD

#define QS_METHOD(name, desc, ops, type) {name, desc, &ops, type},
const qs_method qs_method_table[] = {
#include "core/quant/methods.def"
};
#undef QS_METHOD

const int qs_method_count = (int)(sizeof qs_method_table / sizeof *qs_method_table);
