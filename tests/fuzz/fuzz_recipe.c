/* libFuzzer harness: recipe matching under the bounded regex engine (issue 16). The input is
 * either a recipe JSON (first byte '{') or up to 8 lines PATTERN[=CONFIG]; the rules are
 * resolved against a fixed llama tensor list (4 blocks), and every pattern also runs as the
 * workbench's case-insensitive filter. Each search must end quickly: a pattern beyond the
 * limits is refused ("too complex"), never run for seconds or GBs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant/ggml_types.h"
#include "core/model/model.h"
#include "core/recipe/recipe.h"
#include "core/util/rx.h"

static qs_model *fixed_model(void)
{
    static const char *const roles[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                        "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    qs_model *m = calloc(1, sizeof *m);
    m->tensors = calloc(3 + 4 * 9, sizeof *m->tensors);
    snprintf(m->path, sizeof m->path, "fuzz.gguf");
    snprintf(m->hp.arch, sizeof m->hp.arch, "llama");
    const char *globals[] = {"token_embd.weight", "output_norm.weight", "output.weight"};
    for (int i = 0; i < 3 + 4 * 9; i++) {
        qs_tensor *t = &m->tensors[m->n_tensors++];
        if (i < 3) snprintf(t->name, sizeof t->name, "%s", globals[i]);
        else snprintf(t->name, sizeof t->name, "blk.%d.%s.weight", (i - 3) / 9, roles[(i - 3) % 9]);
        snprintf(t->gguf_name, sizeof t->gguf_name, "%s", t->name);
        qs_role_from_gguf_name(t->name, &t->role, &t->block, &t->is_bias);
        t->type = QS_TYPE_F32;
        t->dtype = "f32";
        bool vec = t->role == QS_ROLE_ATTN_NORM || t->role == QS_ROLE_FFN_NORM || t->role == QS_ROLE_OUTPUT_NORM;
        t->n_dims = vec ? 1 : 2;
        t->ne[0] = 256, t->ne[1] = vec ? 1 : 512, t->ne[2] = t->ne[3] = 1;
        t->nbytes = (uint64_t)(t->ne[0] * t->ne[1] * 4);
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static qs_model *m;
    if (!m) m = fixed_model();
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    qs_recipe r;
    qs_err err = {0};
    int rc;
    if (size && text[0] == '{') {
        rc = qs_recipe_parse(text, size, &r, &err);
    } else {
        qs_recipe_init(&r, m);
        rc = 0;
        int n = 0;
        for (char *line = text, *next; line && n < 8; line = next, n++) {
            next = strchr(line, '\n');
            if (next) *next++ = '\0';
            char *eq = strrchr(line, '=');
            if (eq) *eq = '\0';
            /* the workbench filter: case-insensitive, falls back to a substring */
            qs_rx *f = qs_rx_compile(line, QS_RX_ICASE, NULL);
            for (int64_t i = 0; f && i < m->n_tensors; i++)
                if (qs_rx_search(f, m->tensors[i].name, NULL) < 0) break;
            qs_rx_free(f);
            qs_recipe_add_rule(&r, line, eq && eq[1] ? eq + 1 : "f16", &err);
        }
    }
    if (rc == 0) {
        qs_recipe_table t;
        if (qs_recipe_resolve(&r, m, true, &t, &err) == 0) qs_recipe_table_free(&t);
        qs_recipe_free(&r);
    }
    free(text);
    return 0;
}
