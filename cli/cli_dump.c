/* cli/cli_dump.c — `quantscope dump MODEL TENSOR [--rows A:B] [--cols C:D]`.
 * Prints dequantized values, one row per line, in GGUF layout (HF q/k rows permuted). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model.h"
#include "cli/cli.h"

/* "A:B", "A:", ":B", "A" (one index); half-open; bounds checked against n. */
static int parse_range(const char *s, int64_t n, int64_t *a, int64_t *b)
{
    char *end;
    const char *colon = strchr(s, ':');
    *a = 0;
    *b = n;
    if (colon != s) {
        *a = strtoll(s, &end, 10);
        if (end != (colon ? colon : s + strlen(s))) return -1;
        if (!colon) *b = *a + 1;
    }
    if (colon && colon[1]) {
        *b = strtoll(colon + 1, &end, 10);
        if (*end) return -1;
    }
    return (*a >= 0 && *a <= *b && *b <= n) ? 0 : -1;
}

int qs_cli_dump(int argc, char **argv)
{
    const char *path = NULL, *name = NULL, *rows = NULL, *cols = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--rows") == 0 || strcmp(argv[i], "--cols") == 0) && i + 1 < argc) {
            *(argv[i][2] == 'r' ? &rows : &cols) = argv[i + 1];
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return qs_cli_usage_error("dump: unknown or incomplete option '%s'", argv[i]);
        } else if (!path) path = argv[i];
        else if (!name) name = argv[i];
        else return qs_cli_usage_error("dump: unexpected argument '%s'", argv[i]);
    }
    if (!path || !name) return qs_cli_usage_error("usage: quantscope dump MODEL TENSOR [--rows A:B] [--cols C:D]");
    qs_err err = {0};
    qs_model *m = qs_model_open(path, &err);
    if (!m) return qs_cli_fail(path, &err);
    const qs_tensor *t = qs_model_find_tensor(m, name);
    int rc = QS_EXIT_OK;
    int64_t r0, r1, c0, c1, ncols = t ? t->ne[0] : 0;
    if (!t) {
        fprintf(stderr, "quantscope: %s: no tensor named '%s'\n", QS_ESC(path), QS_ESC(name));
        rc = QS_EXIT_INPUT;
    } else if (parse_range(rows ? rows : ":", qs_tensor_nrows(t), &r0, &r1) ||
               parse_range(cols ? cols : ":", ncols, &c0, &c1)) {
        rc = qs_cli_usage_error("dump: range outside the tensor (%" PRId64 " rows × %" PRId64 " columns)",
                                qs_tensor_nrows(t), ncols);
    } else {
        float *row = malloc((size_t)(ncols ? ncols : 1) * sizeof *row);
        for (int64_t r = r0; row && r < r1 && rc == QS_EXIT_OK; r++) {
            if (qs_tensor_read_rows(t, r, 1, row, &err) != 0) {
                rc = qs_cli_fail(path, &err);
                break;
            }
            for (int64_t c = c0; c < c1; c++) printf(c == c0 ? "%.9g" : " %.9g", (double)row[c]);
            putchar('\n');
        }
        free(row);
    }
    qs_model_close(m);
    return rc;
}
