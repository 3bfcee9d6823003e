/* tui/settings.h — the workbench's settings and last recipe, in $XDG_CONFIG_HOME/quantscope/
 * (else ~/.config/quantscope/): settings.json (theme, mouse, histogram and heatmap modes) and
 * last/MODEL.recipe.json (the recipe as it was at the last clean exit, restored when the same
 * model — same tensor table — is opened again). Read at start (a missing or unreadable file
 * leaves the defaults), written back only on a clean exit, atomically. */
#ifndef QS_SETTINGS_H
#define QS_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/util/err.h"

typedef struct settings {
    char theme[16];          /* "default" or "mono" */
    bool mouse;
    bool log_counts;
    int heat_mode;
} settings;

void settings_defaults(settings *s);
/* the settings directory; false when neither XDG_CONFIG_HOME nor HOME is set */
bool settings_dir(char *out, size_t n);
void settings_load(settings *s);
int settings_save(const settings *s, qs_err *err);
/* the last-recipe file of the model at model_path */
bool settings_last_recipe_path(const char *model_path, char *out, size_t n);
/* a theme name settings accept */
bool settings_theme_known(const char *name);

#endif
