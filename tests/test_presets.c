/* llama-quantize's preset type choice against golden/ggml/presets/MODEL.csv (its --dry-run
 * output for every preset, read with libcsv) for every MODEL.json in the directory. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <csv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "core/recipe/presets.h"
#include "tests/testutil.h"

typedef struct row {
    char preset[16], tensor[96], type[16];
    int64_t ne0, ne1;
} row;

typedef struct rows {
    row *r;
    int n, cap, field;
    row cur;
} rows;

static void on_field(void *s, size_t len, void *data)
{
    rows *x = data;
    char v[128];
    snprintf(v, sizeof v, "%.*s", (int)len, (const char *)s);
    switch (x->field++) {
    case 0: snprintf(x->cur.preset, sizeof x->cur.preset, "%.15s", v); break;
    case 1: snprintf(x->cur.tensor, sizeof x->cur.tensor, "%.95s", v); break;
    case 2: x->cur.ne0 = atoll(v); break;
    case 3: x->cur.ne1 = atoll(v); break;
    case 4: snprintf(x->cur.type, sizeof x->cur.type, "%.15s", v); break;
    }
}

static void on_row(int c, void *data)
{
    (void)c;
    rows *x = data;
    if (x->field == 5 && strcmp(x->cur.preset, "preset")) {
        if (x->n == x->cap) x->r = realloc(x->r, (size_t)(x->cap = x->cap * 2 + 64) * sizeof *x->r);
        x->r[x->n++] = x->cur;
    }
    x->field = 0;
}

static int check_model(const char *json_path)
{
    size_t n;
    char *js = (char *)tu_read(json_path, &n);
    cJSON *hp = cJSON_ParseWithLength(js, n);
    cr_assert_not_null(hp, "%s", json_path);
    char csv_path[4096];
    snprintf(csv_path, sizeof csv_path, "%.*s.csv", (int)(strlen(json_path) - 5), json_path);
    size_t cn;
    char *csvtext = (char *)tu_read(csv_path, &cn);
    cr_assert_not_null(csvtext, "%s", csv_path);
    struct csv_parser p;
    rows x = {0};
    csv_init(&p, 0);
    cr_assert_eq(csv_parse(&p, csvtext, cn, on_field, on_row, &x), cn);
    csv_fini(&p, on_field, on_row, &x);
    csv_free(&p);
    /* the tensor list is the rows of the first preset */
    int nt = 0;
    while (nt < x.n && !strcmp(x.r[nt].preset, x.r[0].preset)) nt++;
    qs_preset_tensor *t = calloc((size_t)nt, sizeof *t);
    for (int i = 0; i < nt; i++) t[i] = (qs_preset_tensor){x.r[i].tensor, {x.r[i].ne0, x.r[i].ne1, 1, 1}, QS_TYPE_F32};
    int checked = 0, *got = malloc((size_t)nt * sizeof *got);
    for (int base = 0; base < x.n; base += nt) {
        const char *preset = x.r[base].preset;
        qs_preset_model pm = {cJSON_GetObjectItem(hp, "arch")->valuestring, cJSON_GetObjectItem(hp, "n_layer")->valueint,
                              cJSON_GetObjectItem(hp, "n_head")->valueint, cJSON_GetObjectItem(hp, "n_head_kv")->valueint,
                              1, false, t, nt};
        int ftype = qs_preset_ftype(preset);
        cr_assert_geq(ftype, 0, "unknown preset %s", preset);
        qs_err err = {0};
        cr_assert_eq(qs_preset_types(ftype, &pm, got, &err), 0, "%s: %s", preset, err.msg);
        for (int i = 0; i < nt; i++) {
            const row *w = &x.r[base + i];
            cr_assert_str_eq(w->tensor, t[i].name, "%s: the presets list their tensors in the same order", csv_path);
            cr_expect(!strcasecmp(qs_type_name(got[i]), w->type), "%s %s %s: %s, llama-quantize %s", csv_path, preset,
                      w->tensor, qs_type_name(got[i]), w->type);
        }
        checked++;
    }
    free(got);
    free(t);
    free(x.r);
    free(csvtext);
    cJSON_Delete(hp);
    free(js);
    return checked;
}

Test(presets, dry_run_types, .timeout = 120)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ggml/presets", tu_golden_dir());
    int n = 0, checked = 0;
    char **files = tu_list(dir, ".json", 0, &n);
    if (!n) tu_skip("no presets in %s", dir);
    for (char **f = files; *f; f++) checked += check_model(*f);
    cr_log_info("preset × model combinations compared: %d", checked);
    cr_assert_gt(checked, 0);
    tu_free_list(files);
}
