/* tools/include_check.c — checks that the include graph has no cycles, between files and between
 * folders (a folder is a layer: core/quant may include core/util, never the other way round too).
 *
 *   include_check FILE…      (paths relative to the repository root, the -I the build uses)
 *
 * Each `#include "X"` of FILE is X beside FILE, else X from the root; includes of files not in
 * the list (system headers) are ignored. Prints each cycle found and exits 1, else prints the
 * counts and exits 0. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_FILES = 4096, MAX_PATH = 512 };

typedef struct graph {
    int n;
    char (*name)[MAX_PATH];
    int **out;          /* adjacency lists, -1 terminated */
    int *n_out, *cap;
} graph;

static int find(const graph *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->name[i], name)) return i;
    return -1;
}

static int intern(graph *g, const char *name)
{
    int i = find(g, name);
    if (i >= 0) return i;
    if (g->n == MAX_FILES) {
        fprintf(stderr, "include_check: more than %d nodes\n", MAX_FILES);
        exit(2);
    }
    snprintf(g->name[g->n], MAX_PATH, "%s", name);
    return g->n++;
}

static void add_edge(graph *g, int a, int b)
{
    for (int k = 0; k < g->n_out[a]; k++)
        if (g->out[a][k] == b) return;
    if (g->n_out[a] == g->cap[a]) {
        int cap = g->cap[a] ? 2 * g->cap[a] : 8;
        int *p = realloc(g->out[a], (size_t)cap * sizeof *p);
        if (!p) {
            fprintf(stderr, "include_check: out of memory\n");
            exit(2);
        }
        g->out[a] = p, g->cap[a] = cap;
    }
    g->out[a][g->n_out[a]++] = b;
}

/* "a/b/../c/./d" → "a/c/d" in place */
static void normalize(char *p)
{
    char *parts[64], buf[MAX_PATH];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", p);
    for (char *s = strtok(buf, "/"); s && n < 64; s = strtok(NULL, "/")) {
        if (!strcmp(s, ".")) continue;
        if (!strcmp(s, "..") && n > 0 && strcmp(parts[n - 1], "..")) n--;
        else parts[n++] = s;
    }
    p[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strcat(p, "/");
        strcat(p, parts[i]);
    }
}

static void dir_of(const char *path, char *out)
{
    snprintf(out, MAX_PATH, "%s", path);
    char *s = strrchr(out, '/');
    if (s) *s = '\0';
    else snprintf(out, MAX_PATH, ".");
}

/* the file an include names, or -1 when it is none of ours */
static int resolve(const graph *files, const char *from, const char *inc)
{
    char dir[MAX_PATH], p[2 * MAX_PATH];
    dir_of(from, dir);
    snprintf(p, sizeof p, "%s/%s", dir, inc);
    normalize(p);
    int i = find(files, p);
    if (i >= 0) return i;
    snprintf(p, sizeof p, "%s", inc);
    normalize(p);
    return find(files, p);
}

static void read_includes(graph *files, int f)
{
    FILE *fp = fopen(files->name[f], "r");
    if (!fp) {
        fprintf(stderr, "include_check: %s: cannot open\n", files->name[f]);
        exit(2);
    }
    char line[1024];
    while (fgets(line, sizeof line, fp)) {
        const char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s++ != '#') continue;
        while (*s == ' ' || *s == '\t') s++;
        if (strncmp(s, "include", 7)) continue;
        s += 7;
        while (*s == ' ' || *s == '\t') s++;
        if (*s++ != '"') continue;
        const char *e = strchr(s, '"');
        if (!e) continue;
        char inc[MAX_PATH];
        snprintf(inc, sizeof inc, "%.*s", (int)(e - s), s);
        int t = resolve(files, files->name[f], inc);
        if (t >= 0) add_edge(files, f, t);
    }
    fclose(fp);
}

/* depth-first search; prints each back edge's cycle */
static int dfs(const graph *g, int v, char *color, int *stack, int depth, const char *what)
{
    int found = 0;
    color[v] = 1;
    stack[depth] = v;
    for (int k = 0; k < g->n_out[v]; k++) {
        int w = g->out[v][k];
        if (color[w] == 1) {
            printf("include cycle between %s:", what);
            int i = depth;
            while (stack[i] != w) i--;
            for (; i <= depth; i++) printf(" %s →", g->name[stack[i]]);
            printf(" %s\n", g->name[w]);
            found++;
        } else if (color[w] == 0) {
            found += dfs(g, w, color, stack, depth + 1, what);
        }
    }
    color[v] = 2;
    return found;
}

static int cycles(const graph *g, const char *what)
{
    char *color = calloc((size_t)g->n + 1, 1);
    int *stack = calloc((size_t)g->n + 1, sizeof *stack);
    int found = 0;
    for (int v = 0; color && stack && v < g->n; v++)
        if (!color[v]) found += dfs(g, v, color, stack, 0, what);
    free(color), free(stack);
    return found;
}

static graph graph_new(void)
{
    graph g = {0};
    g.name = calloc(MAX_FILES, sizeof *g.name);
    g.out = calloc(MAX_FILES, sizeof *g.out);
    g.n_out = calloc(MAX_FILES, sizeof *g.n_out);
    g.cap = calloc(MAX_FILES, sizeof *g.cap);
    if (!g.name || !g.out || !g.n_out || !g.cap) {
        fprintf(stderr, "include_check: out of memory\n");
        exit(2);
    }
    return g;
}

static void graph_free(graph *g)
{
    for (int i = 0; i < g->n; i++) free(g->out[i]);
    free(g->name), free(g->out), free(g->n_out), free(g->cap);
}

int main(int argc, char **argv)
{
    graph files = graph_new(), dirs = graph_new();
    for (int i = 1; i < argc; i++) {
        char p[MAX_PATH];
        snprintf(p, sizeof p, "%s", argv[i]);
        normalize(p);
        intern(&files, p);
    }
    int n_edges = 0;
    for (int f = 0; f < files.n; f++) read_includes(&files, f);
    for (int f = 0; f < files.n; f++) {
        char a[MAX_PATH], b[MAX_PATH];
        dir_of(files.name[f], a);
        int da = intern(&dirs, a);
        for (int k = 0; k < files.n_out[f]; k++, n_edges++) {
            dir_of(files.name[files.out[f][k]], b);
            if (strcmp(a, b)) add_edge(&dirs, da, intern(&dirs, b));
        }
    }
    int bad = cycles(&files, "files") + cycles(&dirs, "folders");
    if (!bad) printf("include graph: %d files, %d includes, %d folders, no cycles\n", files.n, n_edges, dirs.n);
    graph_free(&files), graph_free(&dirs);
    return bad ? 1 : 0;
}
