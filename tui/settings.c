/* tui/settings.c — settings.json and the last recipe under the XDG config directory. */
#include "tui/settings.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util/fileio.h"

void settings_defaults(settings *s) { *s = (settings){"default", true, false, 0}; }

bool settings_theme_known(const char *name) { return !strcmp(name, "default") || !strcmp(name, "mono"); }

bool settings_dir(char *out, size_t n)
{
    const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (x && *x) return snprintf(out, n, "%s/quantscope", x) < (int)n;
    if (home && *home) return snprintf(out, n, "%s/.config/quantscope", home) < (int)n;
    return false;
}

static bool settings_file(char *out, size_t n)
{
    char dir[4096];
    return settings_dir(dir, sizeof dir) && snprintf(out, n, "%s/settings.json", dir) < (int)n;
}

void settings_load(settings *s)
{
    settings_defaults(s);
    char path[4200];
    size_t len;
    char *text = settings_file(path, sizeof path) ? qs_read_file(path, 1u << 20, &len, NULL) : NULL;
    cJSON *o = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "theme"), *mo = cJSON_GetObjectItemCaseSensitive(o, "mouse"),
                *lc = cJSON_GetObjectItemCaseSensitive(o, "log_counts"), *hm = cJSON_GetObjectItemCaseSensitive(o, "heat_mode");
    if (cJSON_IsString(th) && settings_theme_known(th->valuestring)) snprintf(s->theme, sizeof s->theme, "%s", th->valuestring);
    if (cJSON_IsBool(mo)) s->mouse = cJSON_IsTrue(mo);
    if (cJSON_IsBool(lc)) s->log_counts = cJSON_IsTrue(lc);
    if (cJSON_IsNumber(hm) && hm->valueint >= 0 && hm->valueint <= 2) s->heat_mode = hm->valueint;
    cJSON_Delete(o);
}

/* mkdir -p of the settings directory and its last/ */
static int make_dirs(qs_err *err)
{
    char dir[4096], sub[4200];
    if (!settings_dir(dir, sizeof dir)) return qs_err_set(err, QS_E_IO, "neither XDG_CONFIG_HOME nor HOME is set");
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    snprintf(sub, sizeof sub, "%s/last", dir);
    if ((mkdir(dir, 0755) && errno != EEXIST) || (mkdir(sub, 0755) && errno != EEXIST))
        return qs_err_set(err, QS_E_IO, "cannot create %s: %s", sub, strerror(errno));
    return 0;
}

int settings_save(const settings *s, qs_err *err)
{
    char path[4200];
    if (make_dirs(err) || !settings_file(path, sizeof path)) return -QS_E_IO;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "theme", s->theme);
    cJSON_AddBoolToObject(o, "mouse", s->mouse);
    cJSON_AddBoolToObject(o, "log_counts", s->log_counts);
    cJSON_AddNumberToObject(o, "heat_mode", s->heat_mode);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_afile af = {0};
    int rc = 0;
    if (qs_afile_open(&af, path, err) || qs_afile_write(&af, text, strlen(text), err)) qs_afile_abort(&af), rc = -QS_E_IO;
    else rc = qs_afile_commit(&af, err);
    free(text);
    return rc;
}

bool settings_last_recipe_path(const char *model_path, char *out, size_t n)
{
    char dir[4096];
    const char *base = strrchr(model_path, '/');
    if (!settings_dir(dir, sizeof dir) || make_dirs(NULL)) return false;
    return snprintf(out, n, "%s/last/%s.recipe.json", dir, base ? base + 1 : model_path) < (int)n;
}
