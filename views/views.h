/* views/views.h — one draw function per pane. Each reads the application state and the
 * worker's latest result (view-models) and draws into its rectangle. */
#ifndef QS_VIEWS_H
#define QS_VIEWS_H

#include "views/viewmodel.h"
#include "views/plot.h"

void layers_view_draw(rect r, const app *a);
void tensor_view_draw(rect r, const app *a, const app_result *res);
void knobs_view_draw(rect r, const app *a, const app_result *res);
void help_view_draw(rect r);
void gen_view_draw(rect r, const app *a);
void explain_view_draw(rect r, const app *a, const app_result *res);
void scan_view_draw(rect r, const app *a);
void pareto_view_draw(rect r, const app *a);
struct qs_recipe_table;
void recipe_view_draw(rect r, const app *a, const struct qs_recipe_table *t, const app_recipe_totals *tot);

#endif
