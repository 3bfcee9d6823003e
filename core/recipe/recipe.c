/* core/recipe/recipe.c — recipes: JSON load/save, resolution to a per-tensor table, application. */
#include "core/recipe/recipe.h"

#include "core/util/escape.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util/fileio.h"
#include "core/quant/ggml_types.h"
#include "core/formats/gguf.h"
#include "core/util/hash.h"
#include "core/data/calib.h"
#include "core/model/infer.h"
#include "core/recipe/presets.h"
#include "core/util/progress.h"
#include "core/util/rx.h"

/* JSON keys are the knobs' CLI names (qs_knob_get(k)->name) */

void qs_recipe_init(qs_recipe *r, const qs_model *m)
{
    memset(r, 0, sizeof *r);
    r->def_keep = true;
    qs_qconfig_default(&r->def, qs_method_find("q8_0"));
    if (m) {
        const char *base = strrchr(m->path, '/');
        snprintf(r->model_file, sizeof r->model_file, "%.255s", base ? base + 1 : m->path);
        snprintf(r->model_arch, sizeof r->model_arch, "%s", m->hp.arch);
        r->model_tensors = m->n_tensors;
        qs_model_table_hash(m, r->table_hash);
    }
}

static void free_rules(qs_recipe_rule *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].pattern);
        qs_rx_free(v[i].rx);
    }
    free(v);
}

void qs_recipe_free(qs_recipe *r)
{
    free_rules(r->rules, r->n_rules);
    free_rules(r->overrides, r->n_overrides);
    memset(r, 0, sizeof *r);
}

/* order-independent: the sum of one FNV-1a hash per tensor (name and shape), so a model and
 * its llama-quantize outputs (same tensors, another order and other types) share it */
void qs_model_table_hash(const qs_model *m, char out[32])
{
    uint64_t sum = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        const char *name = t->gguf_name[0] ? t->gguf_name : t->name;
        uint64_t h = qs_fnv1a_bytes(QS_FNV1A_INIT, name, strlen(name));
        for (int d = 0; d < 4; d++) h = qs_fnv1a_u64(h, (uint64_t)t->ne[d]);
        sum += h;
    }
    snprintf(out, 32, "tensors:%016llx", (unsigned long long)sum);
}

/* ---- configs ---- */

int qs_config_parse(const char *s, qs_qconfig *cfg, bool *keep, qs_err *err)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *colon = strchr(buf, ':');
    if (colon) *colon = '\0';
    *keep = strcasecmp(buf, "keep") == 0;
    if (*keep) return colon ? qs_err_set(err, QS_E_USAGE, "'keep' takes no knobs") : 0;
    const qs_method *m = qs_method_find(buf);
    if (!m) return qs_err_set(err, QS_E_USAGE, "unknown method '%s' (see `quantscope methods`)", buf);
    qs_qconfig_default(cfg, m);
    for (char *kv = colon ? colon + 1 : NULL, *next; kv && *kv; kv = next) {
        next = strchr(kv, ',');
        if (next) *next++ = '\0';
        char *eq = strchr(kv, '=');
        if (eq) *eq = '\0';
        int rc = qs_qconfig_set(cfg, kv, eq ? eq + 1 : "true", err);
        if (rc) return rc;
    }
    return 0;
}

void qs_config_format(const qs_qconfig *cfg, bool keep, char *buf, size_t n)
{
    if (keep) {
        snprintf(buf, n, "keep");
        return;
    }
    qs_qconfig def;
    qs_qconfig_default(&def, cfg->method);
    size_t o = (size_t)snprintf(buf, n, "%s", cfg->method->name);
    char sep = ':';
    for (int k = 0; k < QS_KNOB_COUNT && o < n; k++) {
        if (!(qs_method_knobs(cfg->method) & (1u << k)) || qs_qconfig_get(cfg, k) == qs_qconfig_get(&def, k)) continue;
        char v[32];
        qs_knob_format((qs_knob_id)k, qs_qconfig_get(cfg, k), v, sizeof v);
        o += (size_t)snprintf(buf + o, n - o, "%c%s=%s", sep, qs_knob_get(k)->name, v);
        sep = ',';
    }
}

/* rx: the compiled pattern of a rule (ownership passes, also on failure), NULL for overrides */
static int push_rule(qs_recipe_rule **v, int *n, const char *pattern, const qs_qconfig *cfg, bool keep, qs_rx *rx,
                     qs_err *err)
{
    qs_recipe_rule *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    char *p = nv ? strdup(pattern) : NULL;
    if (!p) {
        if (nv) *v = nv;
        qs_rx_free(rx);
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    *v = nv;
    nv[*n] = (qs_recipe_rule){p, *cfg, keep, rx};
    (*n)++;
    return 0;
}

/* a rule's pattern, compiled once; "rule 'P' is too complex" when the engine's limits refuse it */
static qs_rx *compile_rule(const char *pattern, qs_err *err)
{
    qs_rx *rx = qs_rx_compile(pattern, 0, err);
    if (!rx && err && strstr(err->msg, "is too complex"))
        qs_err_set(err, QS_E_INPUT, "rule '%.80s' is too complex", pattern);
    return rx;
}

int qs_recipe_add_rule(qs_recipe *r, const char *pattern, const char *config, qs_err *err)
{
    qs_rx *rx = compile_rule(pattern, err);
    if (!rx) {
        /* the caller's own pattern (--set): a syntax error is a usage error, a pattern beyond the
         * engine's limits bad input */
        if (err && err->code == QS_E_INPUT && !strstr(err->msg, "too complex")) err->code = QS_E_USAGE;
        return -(err ? err->code : QS_E_INPUT);
    }
    qs_qconfig c;
    bool keep;
    int rc = qs_config_parse(config, &c, &keep, err);
    if (rc) {
        qs_rx_free(rx);
        return rc;
    }
    return push_rule(&r->rules, &r->n_rules, pattern, &c, keep, rx, err);
}

int qs_recipe_set_override(qs_recipe *r, const char *tensor, const char *config, qs_err *err)
{
    qs_qconfig c;
    bool keep;
    int rc = qs_config_parse(config, &c, &keep, err);
    if (rc) return rc;
    for (int k = 0; k < r->n_overrides; k++) /* a tensor has one override: a new one replaces it */
        if (!strcmp(r->overrides[k].pattern, tensor)) {
            r->overrides[k].cfg = c, r->overrides[k].keep = keep;
            return 0;
        }
    return push_rule(&r->overrides, &r->n_overrides, tensor, &c, keep, NULL, err);
}

int qs_recipe_set_default(qs_recipe *r, const char *config, qs_err *err)
{
    return qs_config_parse(config, &r->def, &r->def_keep, err);
}

/* ---- JSON ---- */

static void as_input(qs_err *err)
{
    if (err && err->code != QS_E_OOM) err->code = QS_E_INPUT;
}

static int config_from_json(const cJSON *o, qs_qconfig *cfg, bool *keep, const char *where, qs_err *err)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "method");
    if (!cJSON_IsObject(o) || !cJSON_IsString(m))
        return qs_err_set(err, QS_E_INPUT, "%s: a config is an object with a \"method\"", where);
    /* a bad config in a recipe file is bad input (exit 2), not a usage error */
    int rc = qs_config_parse(m->valuestring, cfg, keep, err);
    if (rc) return as_input(err), qs_err_prefix(err, "%s", where);
    for (const cJSON *c = o->child; c; c = c->next) {
        if (!strcmp(c->string, "method")) continue;
        int k = 0;
        while (k < QS_KNOB_COUNT && strcmp(qs_knob_get(k)->name, c->string)) k++;
        if (k == QS_KNOB_COUNT || *keep) return qs_err_set(err, QS_E_INPUT, "%s: unknown key '%s'", where, c->string);
        char v[32];
        if (cJSON_IsBool(c)) snprintf(v, sizeof v, "%s", cJSON_IsTrue(c) ? "true" : "false");
        else if (cJSON_IsNumber(c) && qs_knob_get(k)->unit > 0) snprintf(v, sizeof v, "%.9g", c->valuedouble);
        else if (cJSON_IsNumber(c)) snprintf(v, sizeof v, "%d", c->valueint);
        else if (cJSON_IsString(c) && k == QS_KNOB_GGML) snprintf(v, sizeof v, "%.31s", c->valuestring);
        else return qs_err_set(err, QS_E_INPUT, "%s: '%s' must be a number or true/false", where, c->string);
        if ((rc = qs_qconfig_set(cfg, c->string, v, err))) return as_input(err), qs_err_prefix(err, "%s", where);
    }
    return 0;
}

static cJSON *config_to_json(const qs_qconfig *cfg, bool keep)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", keep ? "keep" : cfg->method->name);
    if (keep) return o;
    for (int k = 0; k < QS_KNOB_COUNT; k++) {
        if (!(qs_method_knobs(cfg->method) & (1u << k))) continue;
        const qs_knob_info *ki = qs_knob_get(k);
        char v[32];
        qs_knob_format((qs_knob_id)k, qs_qconfig_get(cfg, k), v, sizeof v);
        if (ki->is_bool) cJSON_AddBoolToObject(o, ki->name, qs_qconfig_get(cfg, k));
        else if (k == QS_KNOB_GGML) cJSON_AddStringToObject(o, ki->name, v); /* a type name */
        else cJSON_AddNumberToObject(o, ki->name, qs_qconfig_get(cfg, k) * (ki->unit > 0 ? ki->unit : 1));
    }
    return o;
}

static int check_keys(const cJSON *o, const char *const *allowed, const char *where, qs_err *err)
{
    for (const cJSON *c = o->child; c; c = c->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, c->string);
        if (!ok) return qs_err_set(err, QS_E_INPUT, "%s: unknown key '%s'", where, c->string);
    }
    return 0;
}

static int parse_model(const cJSON *mo, qs_recipe *r, qs_err *err)
{
    static const char *const keys[] = {"file", "architecture", "tensors", "table_hash", NULL};
    if (!cJSON_IsObject(mo)) return qs_err_set(err, QS_E_INPUT, "\"model\" must be an object");
    int rc = check_keys(mo, keys, "model", err);
    if (rc) return rc;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(mo, "file"), *a = cJSON_GetObjectItemCaseSensitive(mo, "architecture");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(mo, "tensors"), *h = cJSON_GetObjectItemCaseSensitive(mo, "table_hash");
    if (cJSON_IsString(f)) snprintf(r->model_file, sizeof r->model_file, "%s", f->valuestring);
    if (cJSON_IsString(a)) snprintf(r->model_arch, sizeof r->model_arch, "%s", a->valuestring);
    if (cJSON_IsNumber(n)) r->model_tensors = (int64_t)n->valuedouble;
    if (cJSON_IsString(h)) snprintf(r->table_hash, sizeof r->table_hash, "%s", h->valuestring);
    return 0;
}

static int parse_rules(const cJSON *rules, qs_recipe *r, qs_err *err)
{
    static const char *const keys[] = {"pattern", "config", NULL};
    if (!cJSON_IsArray(rules)) return qs_err_set(err, QS_E_INPUT, "\"rules\" must be an array");
    int i = 0, rc = 0;
    for (const cJSON *e = rules->child; e && !rc; e = e->next, i++) {
        char where[32];
        snprintf(where, sizeof where, "rule %d", i + 1);
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "pattern");
        if (!cJSON_IsObject(e) || !cJSON_IsString(p)) return qs_err_set(err, QS_E_INPUT, "%s: needs \"pattern\" and \"config\"", where);
        if ((rc = check_keys(e, keys, where, err))) break;
        qs_rx *rx = compile_rule(p->valuestring, err);
        if (!rx) {
            if (err) err->code = err->code == QS_E_OOM ? QS_E_OOM : QS_E_INPUT;
            return qs_err_prefix(err, "%s", where);
        }
        qs_qconfig c;
        bool keep;
        rc = config_from_json(cJSON_GetObjectItemCaseSensitive(e, "config"), &c, &keep, where, err);
        if (!rc) rc = push_rule(&r->rules, &r->n_rules, p->valuestring, &c, keep, rx, err);
        else qs_rx_free(rx);
    }
    return rc;
}

int qs_recipe_parse(const char *json, size_t len, qs_recipe *r, qs_err *err)
{
    static const char *const keys[] = {"quantscope_recipe", "model", "default", "rules", "overrides", NULL};
    qs_recipe_init(r, NULL);
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc = 0;
    if (!cJSON_IsObject(root)) rc = qs_err_set(err, QS_E_INPUT, "not a JSON object");
    const cJSON *ver = root ? cJSON_GetObjectItemCaseSensitive(root, "quantscope_recipe") : NULL;
    if (!rc && (!cJSON_IsNumber(ver) || ver->valueint != 1)) rc = qs_err_set(err, QS_E_INPUT, "not a quantscope recipe (\"quantscope_recipe\": 1 missing)");
    if (!rc) rc = check_keys(root, keys, "recipe", err);
    const cJSON *x;
    if (!rc && (x = cJSON_GetObjectItemCaseSensitive(root, "model"))) rc = parse_model(x, r, err);
    if (!rc && (x = cJSON_GetObjectItemCaseSensitive(root, "default"))) rc = config_from_json(x, &r->def, &r->def_keep, "default", err);
    if (!rc && (x = cJSON_GetObjectItemCaseSensitive(root, "rules"))) rc = parse_rules(x, r, err);
    if (!rc && (x = cJSON_GetObjectItemCaseSensitive(root, "overrides"))) {
        if (!cJSON_IsObject(x)) rc = qs_err_set(err, QS_E_INPUT, "\"overrides\" must be an object");
        for (const cJSON *e = cJSON_IsObject(x) ? x->child : NULL; e && !rc; e = e->next) {
            qs_qconfig c;
            bool keep;
            char where[96];
            snprintf(where, sizeof where, "override %.64s", e->string);
            rc = config_from_json(e, &c, &keep, where, err);
            if (!rc) rc = push_rule(&r->overrides, &r->n_overrides, e->string, &c, keep, NULL, err);
        }
    }
    cJSON_Delete(root);
    if (rc) qs_recipe_free(r);
    return rc;
}

int qs_recipe_load(const char *path, qs_recipe *r, qs_err *err)
{
    size_t len;
    char *text = qs_read_file(path, 64u << 20, &len, err);
    if (!text) return -(err ? err->code : QS_E_IO);
    int rc = qs_recipe_parse(text, len, r, err);
    free(text);
    return rc;
}

int qs_recipe_save(const char *path, const qs_recipe *r, qs_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "quantscope_recipe", 1);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "file", r->model_file);
    cJSON_AddStringToObject(m, "architecture", r->model_arch);
    cJSON_AddNumberToObject(m, "tensors", (double)r->model_tensors);
    cJSON_AddStringToObject(m, "table_hash", r->table_hash);
    cJSON_AddItemToObject(root, "default", config_to_json(&r->def, r->def_keep));
    cJSON *rules = cJSON_AddArrayToObject(root, "rules");
    for (int i = 0; i < r->n_rules; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "pattern", r->rules[i].pattern);
        cJSON_AddItemToObject(e, "config", config_to_json(&r->rules[i].cfg, r->rules[i].keep));
        cJSON_AddItemToArray(rules, e);
    }
    cJSON *ov = cJSON_AddObjectToObject(root, "overrides");
    for (int i = 0; i < r->n_overrides; i++)
        cJSON_AddItemToObject(ov, r->overrides[i].pattern, config_to_json(&r->overrides[i].cfg, r->overrides[i].keep));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_afile af;
    int rc = qs_afile_open(&af, path, err);
    if (!rc) rc = qs_afile_write(&af, text, strlen(text), err);
    if (!rc) rc = qs_afile_write(&af, "\n", 1, err);
    free(text);
    if (rc) {
        if (af.f) qs_afile_abort(&af);
        return rc;
    }
    return qs_afile_commit(&af, err);
}

int qs_recipe_from_model(qs_recipe *r, const qs_model *quantized, qs_err *err)
{
    for (int64_t i = 0; i < quantized->n_tensors; i++) {
        const qs_tensor *t = &quantized->tensors[i];
        const qs_method *m = t->type >= 0 ? qs_method_find(qs_type_name(t->type)) : NULL;
        qs_qconfig c;
        bool keep = t->type == QS_TYPE_F32 || !m;
        if (m) qs_qconfig_default(&c, m);
        else qs_qconfig_default(&c, qs_method_find("f16"));
        int rc = push_rule(&r->overrides, &r->n_overrides, t->gguf_name[0] ? t->gguf_name : t->name, &c, keep, NULL, err);
        if (rc) return rc;
    }
    return 0;
}

/* One override per tensor with the type llama-quantize's preset gives it (spec/llama-quant-presets.md). */
int qs_recipe_from_preset(qs_recipe *r, const qs_model *m, const char *preset, bool has_imatrix, qs_err *err)
{
    int ftype = qs_preset_ftype(preset);
    if (ftype < 0) return qs_err_set(err, QS_E_USAGE, "unknown preset '%s' (Q4_K_M, Q5_K_S, Q8_0, IQ4_XS, …)", preset);
    int n = (int)m->n_tensors;
    qs_preset_tensor *pt = calloc((size_t)(n ? n : 1), sizeof *pt);
    int *types = calloc((size_t)(n ? n : 1), sizeof *types);
    int rc = pt && types ? 0 : qs_err_set(err, QS_E_OOM, "out of memory");
    for (int i = 0; i < n && !rc; i++) {
        const qs_tensor *t = &m->tensors[i];
        pt[i] = (qs_preset_tensor){t->gguf_name[0] ? t->gguf_name : t->name, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]},
                                   t->type};
    }
    uint32_t n_expert = 1;
    if (m->gguf) {
        char key[128];
        snprintf(key, sizeof key, "%s.expert_count", m->hp.arch);
        if (qs_gguf_find_key(m->gguf, key) >= 0 && qs_gguf_get_u32(m->gguf, key, &n_expert, err)) rc = QS_E_INPUT;
    }
    qs_preset_model pm = {m->hp.arch, (int)m->hp.n_layer, (int)m->hp.n_head, (int)m->hp.n_head_kv, (int)n_expert,
                          has_imatrix, pt, n};
    if (!rc) rc = qs_preset_types(ftype, &pm, types, err);
    for (int i = 0; i < n && !rc; i++) {
        const qs_tensor *t = &m->tensors[i];
        bool keep = types[i] == t->type || types[i] < 0;
        const qs_method *meth = keep ? qs_method_find("f16") : qs_method_find(qs_type_name(types[i]));
        if (!meth) {
            rc = qs_err_set(err, QS_E_USAGE, "%s: preset type %s is not a quantscope method", pt[i].name,
                            qs_type_name(types[i]));
            break;
        }
        qs_qconfig c;
        qs_qconfig_default(&c, meth);
        rc = push_rule(&r->overrides, &r->n_overrides, pt[i].name, &c, keep, NULL, err);
    }
    free(types);
    free(pt);
    return rc;
}

/* ---- resolution ---- */

static int err_code(const qs_err *err) { return err && err->code ? err->code : QS_E_INPUT; }

bool qs_recipe_quantizable(const qs_tensor *t)
{
    return t->n_dims >= 2 && t->ne[1] > 1 && !t->is_bias && t->type >= 0 && qs_type_get(t->type) &&
           qs_type_get(t->type)->can_dequantize && t->role != QS_ROLE_ATTN_NORM && t->role != QS_ROLE_FFN_NORM &&
           t->role != QS_ROLE_OUTPUT_NORM;
}

/* appends a warning; tensor names and patterns come from files, so they are escaped for the
 * terminal the warnings are printed on */
static void warn(qs_recipe_table *t, const char *fmt, const char *a, const char *b)
{
    char ea[512], eb[512];
    size_t o = strlen(t->warnings);
    if (o + 2 < sizeof t->warnings)
        snprintf(t->warnings + o, sizeof t->warnings - o, fmt, qs_escape(a, ea, sizeof ea), qs_escape(b, eb, sizeof eb));
}

int qs_recipe_resolve(const qs_recipe *r, const qs_model *m, bool force, qs_recipe_table *out, qs_err *err)
{
    memset(out, 0, sizeof *out);
    char hash[32];
    qs_model_table_hash(m, hash);
    if (!force && r->table_hash[0] && strcmp(hash, r->table_hash))
        return qs_err_set(err, QS_E_INPUT, "the recipe was made for another model (%s, %lld tensors)", r->model_file,
                          (long long)r->model_tensors);
    int *hits = calloc((size_t)(r->n_rules ? r->n_rules : 1), sizeof *hits);
    out->e = calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *out->e);
    if (!hits || !out->e) {
        free(hits);
        free(out->e);
        out->e = NULL;
        return qs_err_set(err, QS_E_OOM, "out of memory");
    }
    /* rules built by hand (not through add_rule or parse) are compiled here, once */
    qs_rx **rx = calloc((size_t)(r->n_rules ? r->n_rules : 1), sizeof *rx);
    int rc = rx ? 0 : qs_err_set(err, QS_E_OOM, "out of memory");
    for (int k = 0; k < r->n_rules && !rc; k++)
        if (!(rx[k] = r->rules[k].rx) && !(rx[k] = compile_rule(r->rules[k].pattern, err))) rc = -err_code(err);
    out->n = m->n_tensors;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const qs_tensor *t = &m->tensors[i];
        const char *name = t->gguf_name[0] ? t->gguf_name : t->name;
        qs_recipe_entry *e = &out->e[i];
        e->t = t;
        e->ggml_type = -1;
        e->keep = true;
        if (qs_recipe_quantizable(t)) {
            const qs_recipe_rule *hit = NULL;
            for (int k = 0; k < r->n_overrides && !hit; k++)
                if (!strcmp(r->overrides[k].pattern, name) || !strcmp(r->overrides[k].pattern, t->name)) hit = &r->overrides[k];
            for (int k = 0; k < r->n_rules && !hit && !rc; k++) {
                int found = qs_rx_search(rx[k], name, err);
                if (found < 0) rc = qs_err_set(err, found == -QS_E_OOM ? QS_E_OOM : QS_E_INPUT, "rule '%.80s' is too complex",
                                               r->rules[k].pattern);
                else if (found) hit = &r->rules[k], hits[k]++;
            }
            e->keep = hit ? hit->keep : r->def_keep;
            e->cfg = hit ? hit->cfg : r->def;
        }
        if (rc) break;
        int64_t rows = qs_tensor_nrows(t), cols = t->ne[0];
        if (!e->keep) {
            int type;
            if (qs_qconfig_check(&e->cfg, rows, cols, &type, err) != 0) {
                qs_err_prefix(err, "%s", name);
                rc = -QS_E_INPUT;
                break;
            }
            e->ggml_type = type;
            int nominal = qs_qconfig_ggml_request(&e->cfg);
            if (type >= 0 && type != nominal) {
                char msg[96];
                snprintf(msg, sizeof msg, "%s → %s", qs_type_name(nominal), qs_type_name(type));
                warn(out, "%s: %s (llama-quantize's block-size fallback)\n", name, msg);
            }
            e->bpw = qs_qconfig_bpw(&e->cfg, rows, cols, type);
            e->bytes = (int64_t)(e->bpw * (double)(rows * cols) / 8.0 + 0.5);
        } else {
            e->bpw = qs_tensor_bpw(t);
            e->bytes = (int64_t)t->nbytes;
        }
    }
    for (int k = 0; k < r->n_rules && !rc; k++)
        if (!hits[k]) warn(out, "rule '%s' matches no tensor%s\n", r->rules[k].pattern, "");
    for (int k = 0; rx && k < r->n_rules; k++)
        if (rx[k] != r->rules[k].rx) qs_rx_free(rx[k]);
    free(rx);
    free(hits);
    if (rc) qs_recipe_table_free(out);
    return rc;
}

bool qs_recipe_table_needs_calib(const qs_recipe_table *t)
{
    for (int64_t i = 0; i < t->n; i++)
        if (!t->e[i].keep && qs_method_needs_calib(t->e[i].cfg.method)) return true;
    return false;
}

bool qs_recipe_table_has_non_ggml(const qs_recipe_table *t)
{
    for (int64_t i = 0; i < t->n; i++)
        if (!t->e[i].keep && !t->e[i].cfg.method->ops->ggml_native) return true;
    return false;
}

void qs_recipe_table_free(qs_recipe_table *t)
{
    free(t->e);
    memset(t, 0, sizeof *t);
}

/* the entries quantized together with entry i: AWQ entries reading the same input with the same
 * config (i alone otherwise); their indices into m */
static int joint_members(const qs_recipe_table *t, int64_t i, const qs_calib_set *calib, const bool *done, int64_t *m)
{
    const qs_recipe_entry *e = &t->e[i];
    m[0] = i;
    const qs_calib_site *s = e->cfg.method->ops->joint_by_input ? qs_calib_find(calib, e->t->gguf_name) : NULL;
    int n = 1;
    for (int64_t j = i + 1; s && j < t->n && n < 3; j++) {
        const qs_recipe_entry *f = &t->e[j];
        if (f->keep || done[j] || f->t->ne[0] != e->t->ne[0] || !qs_qconfig_equal(&f->cfg, &e->cfg)) continue;
        for (int k = 0; k < s->n_names; k++)
            if (!strcmp(s->names[k], f->t->gguf_name)) m[n++] = j;
    }
    return n;
}

/* AWQ scales need a previous op to fold into (spec/awq.md §2): attn_output's is attn_v, and only
 * when its output rows match attn_output's columns (no grouped-query attention); a tied
 * token_embd (the output) has none, as its columns are the embeddings too */
static bool awq_scalable(const qs_recipe_table *t, const qs_recipe_entry *e)
{
    if (e->t->role == QS_ROLE_TOKEN_EMBD) return false;
    if (e->t->role != QS_ROLE_ATTN_O) return true;
    for (int64_t i = 0; i < t->n; i++)
        if (t->e[i].t->role == QS_ROLE_ATTN_V && t->e[i].t->block == e->t->block)
            return qs_tensor_nrows(t->e[i].t) == e->t->ne[0];
    return false;
}

/* quantizes entry i (and its joint members) and installs the result */
static int apply_entry(const qs_recipe_table *t, int64_t i, qs_llm *l, const qs_calib_set *calib, bool *done,
                       int n_threads, const qs_recipe_sink *sink, qs_err *err)
{
    int64_t m[3], rows = 0, cols = t->e[i].t->ne[0];
    int n = joint_members(t, i, calib, done, m);
    for (int k = 0; k < n; k++) rows += qs_tensor_nrows(t->e[m[k]].t);
    const qs_recipe_entry *e = &t->e[i];
    float *w = malloc((size_t)(rows * cols) * sizeof *w);
    if (!w) return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = 0;
    int64_t off = 0;
    for (int k = 0; !rc && k < n; k++) {
        int64_t r = qs_tensor_nrows(t->e[m[k]].t);
        rc = qs_tensor_read_rows(t->e[m[k]].t, 0, r, w + off * cols, err);
        off += r;
    }
    qs_calib view = {0}, *cv = NULL;
    if (!rc && qs_method_needs_calib(e->cfg.method)) {
        if (!calib) rc = qs_err_set(err, QS_E_USAGE, "%s needs calibration data (--calib TEXT)", e->cfg.method->name);
        else rc = qs_calib_for_tensor(calib, e->t->gguf_name, qs_method_needs_hessian(e->cfg.method), &view, err);
        cv = &view;
    }
    qs_qconfig cfg = e->cfg;
    if (cfg.method->ops->unfolded && !awq_scalable(t, e)) cfg.method->ops->unfolded(&cfg); /* s ≡ 1 */
    qs_qresult r;
    if (!rc) rc = qs_quant_run(&cfg, w, rows, cols, cv, NULL, n_threads, &r, err);
    if (!rc) {
        off = 0;
        for (int k = 0; !rc && k < n; k++) {
            const qs_recipe_entry *f = &t->e[m[k]];
            if (l) rc = qs_llm_set_result(l, f->t->name, &r, off, err);
            if (!rc && sink) rc = sink->take(sink->ctx, m[k], &r, off, qs_tensor_nrows(f->t), err);
            off += qs_tensor_nrows(f->t);
            done[m[k]] = true;
        }
        qs_qresult_free(&r);
    }
    qs_calib_free(&view);
    free(w);
    return rc ? qs_err_prefix(err, "%s", e->t->name) : 0;
}

static int64_t todo_count(const qs_recipe_table *t)
{
    int64_t n = 0;
    for (int64_t i = 0; i < t->n; i++) n += !t->e[i].keep;
    return n;
}

/* stage b of L blocks: b < 0 every entry, b < L block b, b == L the tensors outside the blocks */
static bool in_stage(const qs_recipe_entry *e, int b, int L)
{
    return b < 0 || (b < L ? e->t->block == b : e->t->block < 0);
}

/* applies the entries of stage b not done yet: GPTQ entries with gptq_calib, the others with calib */
static int apply_stage(const qs_recipe_table *t, int b, int L, qs_llm *l, const qs_calib_set *gptq_calib,
                       const qs_calib_set *calib, bool *done, int n_threads, const qs_recipe_sink *sink, qs_progress *prog,
                       qs_err *err)
{
    int64_t todo = todo_count(t);
    for (int64_t i = 0; i < t->n; i++) {
        const qs_recipe_entry *e = &t->e[i];
        if (e->keep || done[i] || !in_stage(e, b, L)) continue;
        if (!l && e->cfg.method->ops->ggml_native) {
            done[i] = true;
            continue;
        }
        int rc = apply_entry(t, i, l, qs_method_needs_hessian(e->cfg.method) ? gptq_calib : calib, done, n_threads, sink,
                             err);
        if (rc) return rc;
        int64_t n_done = 0;
        for (int64_t j = 0; j < t->n; j++) n_done += done[j];
        if (!qs_progress_step(prog, n_done, todo)) return qs_err_set(err, QS_E_CANCELLED, "cancelled");
    }
    return 0;
}

int qs_recipe_apply(const qs_recipe_table *t, qs_llm *l, const qs_calib_set *calib, int n_threads,
                    const qs_recipe_sink *sink, qs_progress *prog, qs_err *err)
{
    bool *done = calloc((size_t)(t->n ? t->n : 1), sizeof *done);
    if (!done) return qs_err_set(err, QS_E_OOM, "out of memory");
    int rc = apply_stage(t, -1, 0, l, calib, calib, done, n_threads, sink, prog, err);
    free(done);
    return rc;
}

int qs_recipe_apply_calibrated(const qs_recipe_table *t, qs_llm *l, const qs_vocab *v, const char *text, size_t len,
                               const qs_calib_opts *o, bool sequential, int n_threads, const qs_recipe_sink *sink,
                               qs_progress *prog, qs_err *err)
{
    bool any_gptq = false, any_awq = false;
    for (int64_t i = 0; i < t->n; i++)
        if (!t->e[i].keep) {
            any_gptq |= t->e[i].cfg.method->ops->needs_hessian;
            any_awq |= t->e[i].cfg.method->ops->needs_calib_rows;
        }
    bool *done = calloc((size_t)(t->n ? t->n : 1), sizeof *done);
    if (!done) return qs_err_set(err, QS_E_OOM, "out of memory");
    qs_calib_set *fp = NULL;
    qs_calib_opts fo = *o;
    fo.prefix = NULL;
    fo.hessians = any_gptq && !sequential;
    int rc = 0;
    /* the original model's statistics, before anything is quantized */
    if (any_awq || (any_gptq && !sequential)) rc = qs_calib_collect(l, v, text, len, &fo, NULL, &fp, err);
    int L = 0;
    for (int64_t i = 0; i < t->n; i++) L = t->e[i].t->block + 1 > L ? t->e[i].t->block + 1 : L;
    for (int b = 0; !rc && any_gptq && sequential && b <= L; b++) {
        /* stage L: the tensors outside the blocks (output), calibrated after every block */
        bool gptq_here = false;
        for (int64_t i = 0; i < t->n; i++)
            gptq_here |= !t->e[i].keep && !done[i] && t->e[i].cfg.method->ops->needs_hessian && in_stage(&t->e[i], b, L);
        qs_calib_set *bs = NULL;
        char prefix[32];
        snprintf(prefix, sizeof prefix, "blk.%d.", b);
        qs_calib_opts bo = *o;
        bo.prefix = b < L ? prefix : NULL;
        bo.hessians = true;
        if (gptq_here) rc = qs_calib_collect(l, v, text, len, &bo, NULL, &bs, err);
        /* GPTQ entries from this stage's set, the others (AWQ: original activations) from fp */
        if (!rc) rc = apply_stage(t, b, L, l, bs, fp, done, n_threads, sink, prog, err);
        qs_calib_set_free(bs);
    }
    if (!rc) rc = apply_stage(t, -1, 0, l, fp, fp, done, n_threads, sink, prog, err);
    qs_calib_set_free(fp);
    free(done);
    return rc;
}
