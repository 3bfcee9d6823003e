/* tui/app.h — the workbench's key handling on its state (views/viewmodel.h). Handlers mutate
 * the state and return reaction bits; they never draw. */
#ifndef QS_APP_H
#define QS_APP_H

#include <stdbool.h>
#include <stddef.h>

#include "views/viewmodel.h"

int app_init(app *a, qs_model *m, char *err, size_t errn);
void app_free(app *a);
void app_rebuild_rows(app *a);
/* handles one key (curses key code or character); returns reaction bits */
int app_handle_key(app *a, int key);
struct qs_recipe;
struct qs_recipe_table;
/* the per-tensor configs as a recipe (one override per quantizable tensor) */
int app_build_recipe(const app *a, struct qs_recipe *r, char *err, size_t errn);
/* the configs of a recipe file resolved against the model (a recipe for another model is an
 * error), *changed of them different: undoable as one edit (O), or not (the session restored at
 * start, after which the app is "saved") */
int app_load_recipe(app *a, const char *path, bool undoable, int *changed, char *err, size_t errn);
/* the model's file name with a suffix (".recipe.json", ".quant.gguf" …) in the current directory:
 * where e, O, E and W save and load */
void app_model_file(const app *a, const char *suffix, char *out, size_t n);
/* the recipe resolved against the model and its totals (app_recipe_totals) */
int app_recipe_table(const app *a, struct qs_recipe_table *t, app_recipe_totals *tot, char *err, size_t errn);
/* recipe-view presets: key → name ("Q4_K_M", "NF4", "RTN-4 g128"), NULL for other keys */
const char *app_preset_for_key(int key);
/* a mouse click at (y, x) on the workbench laid out as l: focuses the pane under it and
 * selects the row (a block header toggles; a click on the selected knob raises it); in the
 * recipe view it selects the tensor row. Returns reaction bits. */
int app_click(app *a, const layout *l, int y, int x);
/* the tensor index of scan row i, -1 if none */
int app_scan_tensor(const app *a, int i);

#endif
