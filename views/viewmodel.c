/* views/viewmodel.c — the queries the views ask of the workbench's state. */
#include "views/viewmodel.h"

#include "core/recipe/recipe.h"

const char *const app_sort_names[SORT_COUNT] = {"file order", "name", "size", "error"};

int app_selected_tensor(const app *a)
{
    return a->nav.sel >= 0 && a->nav.sel < a->nav.n_rows ? a->nav.rows[a->nav.sel] : -1;
}

bool app_tensor_quantizable(const app *a, int t) { return qs_recipe_quantizable(&a->model->tensors[t]); }

int app_knob_count(const app *a)
{
    int t = app_selected_tensor(a);
    if (t < 0) return 0;
    int n = 1;
    for (int k = 0; k < QS_KNOB_COUNT; k++) n += (qs_method_knobs(a->rec.cfg[t].method) >> k) & 1;
    return n;
}

int app_knob_at(const app *a, int i)
{
    int t = app_selected_tensor(a);
    if (t < 0 || i <= 0) return -1;
    for (int k = 0; k < QS_KNOB_COUNT; k++)
        if (((qs_method_knobs(a->rec.cfg[t].method) >> k) & 1) && --i == 0) return k;
    return -1;
}
