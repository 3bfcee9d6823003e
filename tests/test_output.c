/* Outputs never replace what they should not (issue 16): an input (also through symbolic and
 * hard links), a symbolic link, FIFO or device; a killed export leaves no temporary file; a
 * checkpoint directory is replaced whole (no stale files of an earlier export). Runs on the
 * bundled sample_models/kjv-tiny.gguf, copied into a temporary directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util/fileio.h"
#include "tests/testutil.h"

/* a fresh directory holding m.gguf, a copy of the sample model (path in dir) */
static char *setup(const char *model)
{
    if (access(model, R_OK)) tu_skip("%s missing", model);
    char *dir = tu_tmpdir(), cmd[8192];
    snprintf(cmd, sizeof cmd, "cp %s %s/m.gguf", model, dir);
    cr_assert_eq(system(cmd), 0);
    return dir;
}

static int same_bytes(const char *a, const char *b)
{
    size_t na, nb;
    uint8_t *x = tu_read(a, &na), *y = tu_read(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* `quantscope ARGS` run in dir */
static tu_run_result run_in(const char *dir, const char *args)
{
    char a[8192];
    snprintf(a, sizeof a, "%s", args);
    char cwd[4096];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(dir), 0);
    tu_run_result r = tu_run(a);
    cr_assert_eq(chdir(cwd), 0);
    return r;
}

static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

Test(output, never_onto_an_input)
{
    char *dir = setup("sample_models/kjv-tiny.gguf"), m[4200], orig[4200], p[8600];
    snprintf(m, sizeof m, "%s/m.gguf", dir);
    snprintf(orig, sizeof orig, "%s/orig.gguf", dir);
    snprintf(p, sizeof p, "cp %s %s", m, orig);
    cr_assert_eq(system(p), 0);
    snprintf(p, sizeof p, "%s/link.gguf", dir);
    cr_assert_eq(symlink("m.gguf", p), 0);
    snprintf(p, sizeof p, "%s/hard.gguf", dir);
    cr_assert_eq(link(m, p), 0);
    const char *cases[] = {
        "export m.gguf --type q4_K -o m.gguf",      /* itself */
        "export link.gguf --type q4_K -o m.gguf",   /* the input through a symbolic link */
        "export m.gguf --type q4_K -o hard.gguf",   /* a hard link to the input */
        "export m.gguf --type q4_K -o ./m.gguf",
        "quant m.gguf blk.0.attn_q.weight --method rtn --out m.gguf",
        "export m.gguf --hf .",                     /* the directory holding the input */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tu_run_result r = run_in(dir, cases[i]);
        cr_expect_neq(r.status, 0, "%s: must be refused", cases[i]);
        cr_expect(strstr(r.err, "input") != NULL, "%s: %s", cases[i], r.err);
        cr_expect(strchr(r.err, '\n') == strrchr(r.err, '\n'), "one line: %s", r.err);
        tu_run_free(&r);
        cr_assert(same_bytes(m, orig), "%s replaced the input", cases[i]);
        struct stat st;
        cr_assert_eq(lstat(p, &st), 0);
        cr_assert_eq(st.st_nlink, 2, "%s: the hard link was broken", cases[i]);
    }
    /* in-process: a mapped file is an input for qs_afile */
    qs_mapping map;
    qs_err err = {0};
    cr_assert_eq(qs_map_file(orig, &map, &err), 0, "%s", err.msg);
    qs_afile af;
    cr_expect_neq(qs_afile_open(&af, orig, &err), 0, "a mapped file must not be replaced");
    qs_unmap_file(&map);
    cr_expect_eq(qs_afile_open(&af, orig, &err), 0, "%s", err.msg);
    qs_afile_abort(&af);
    tu_rmtree(dir);
    free(dir);
}

Test(output, never_onto_a_link_fifo_or_device)
{
    char *dir = setup("sample_models/kjv-tiny.gguf"), p[4200], target[4200];
    snprintf(target, sizeof target, "%s/target", dir);
    FILE *f = fopen(target, "w");
    fputs("keep me\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/link.gguf", dir);
    cr_assert_eq(symlink("target", p), 0);
    snprintf(p, sizeof p, "%s/fifo", dir);
    cr_assert_eq(mkfifo(p, 0644), 0);
    snprintf(p, sizeof p, "%s/null", dir);
    int have_dev = mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0; /* /dev/null's numbers, where allowed */
    const char *outs[] = {"link.gguf", "fifo", "null"};
    for (int i = 0; i < 3; i++) {
        if (i == 2 && !have_dev) continue;
        char args[256];
        snprintf(args, sizeof args, "export m.gguf --type q4_K -o %s", outs[i]);
        tu_run_result r = run_in(dir, args);
        cr_expect_neq(r.status, 0, "%s", args);
        cr_expect(strstr(r.err, "not replacing") != NULL, "%s: %s", args, r.err);
        tu_run_free(&r);
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, outs[i]);
        cr_assert_eq(lstat(p, &st), 0);
        cr_expect(i == 0 ? S_ISLNK(st.st_mode) : i == 1 ? S_ISFIFO(st.st_mode) : S_ISCHR(st.st_mode), "%s was replaced", outs[i]);
    }
    size_t n;
    char *keep = (char *)tu_read(target, &n);
    cr_expect(keep && n == 8 && !memcmp(keep, "keep me\n", 8), "the link's target was written");
    free(keep);
    /* a directory output on a regular file, and the recipe writer on a FIFO */
    tu_run_result r = run_in(dir, "export m.gguf --hf target");
    cr_expect_neq(r.status, 0);
    tu_run_free(&r);
    r = run_in(dir, "recipe m.gguf --default q4_K -o fifo");
    cr_expect_neq(r.status, 0, "%s", r.out);
    tu_run_free(&r);
    cr_expect_eq(count_tmp(dir), 0);
    tu_rmtree(dir);
    free(dir);
}

/* a checkpoint directory is replaced whole: no stale file of an earlier export survives; a
 * directory holding other files is refused and left as it was */
Test(output, checkpoint_directory_replaced_whole)
{
    char *dir = setup("sample_models/kjv-tiny.gguf"), p[4200];
    tu_run_result r = run_in(dir, "export m.gguf --hf ck");
    cr_assert_eq(r.status, 0, "%s", r.err);
    tu_run_free(&r);
    snprintf(p, sizeof p, "%s/ck/quantize_config.json", dir); /* as a GPTQ export before it would have left */
    FILE *f = fopen(p, "w");
    fputs("{}\n", f);
    fclose(f);
    r = run_in(dir, "export m.gguf --hf ck");
    cr_assert_eq(r.status, 0, "%s", r.err);
    tu_run_free(&r);
    cr_expect_neq(access(p, F_OK), 0, "the stale quantize_config.json of the earlier export survived");
    snprintf(p, sizeof p, "%s/ck/model.safetensors", dir);
    cr_expect_eq(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/ck/notes.txt", dir);
    f = fopen(p, "w");
    fputs("mine\n", f);
    fclose(f);
    r = run_in(dir, "export m.gguf --hf ck");
    cr_expect_neq(r.status, 0, "a directory holding other files is not replaced");
    cr_expect(strstr(r.err, "notes.txt") != NULL, "%s", r.err);
    tu_run_free(&r);
    cr_expect_eq(access(p, F_OK), 0);
    cr_expect_eq(count_tmp(dir), 0);
    tu_rmtree(dir);
    free(dir);
}

/* SIGTERM (and the other terminating signals) during an export remove its temporary file */
static void kill_during_export(int sig)
{
    const char *bin = getenv("QS_BIN");
    if (!bin) tu_skip("QS_BIN not set (make test sets it)");
    char *dir = setup("sample_models/kjv-small.gguf"), m[4200], out[4200];
    snprintf(m, sizeof m, "%s/m.gguf", dir);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    int in = inotify_init1(IN_CLOEXEC);
    cr_assert_geq(in, 0);
    cr_assert_geq(inotify_add_watch(in, dir, IN_CREATE), 0);
    pid_t pid = fork();
    if (!pid) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1), dup2(null, 2);
        execl(bin, bin, "export", m, "--type", "q4_K", "-o", out, (char *)NULL);
        _exit(127);
    }
    int seen = 0;
    struct pollfd pf = {in, POLLIN, 0};
    while (!seen && poll(&pf, 1, 60000) > 0) {
        char buf[4096] __attribute__((aligned(8)));
        ssize_t n = read(in, buf, sizeof buf);
        for (ssize_t o = 0; o < n;) {
            struct inotify_event *e = (struct inotify_event *)(buf + o);
            if (e->len && strstr(e->name, ".tmp.")) seen = 1;
            o += (ssize_t)sizeof *e + e->len;
        }
    }
    if (seen) kill(pid, sig);
    int st;
    waitpid(pid, &st, 0);
    close(in);
    cr_assert(seen, "the export never created its temporary file");
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == sig, "the export ended by the signal (status %d)", st);
    cr_expect_eq(count_tmp(dir), 0, "a temporary file survived signal %d", sig);
    cr_expect_neq(access(out, F_OK), 0);
    tu_rmtree(dir);
    free(dir);
}

Test(output, sigterm_leaves_no_temporary_file, .timeout = 120) { kill_during_export(SIGTERM); }
Test(output, sighup_leaves_no_temporary_file, .timeout = 120) { kill_during_export(SIGHUP); }
Test(output, sigint_leaves_no_temporary_file, .timeout = 120) { kill_during_export(SIGINT); }

/* ---- a model truncated on disk while it is mapped: an error, not SIGBUS ---- */

#include "core/formats/gguf.h"
#include "core/model/model.h"

Test(mapped, truncated_model_is_an_error_not_sigbus)
{
    char *dir = setup("sample_models/kjv-tiny.gguf"), m[4200], out[4200];
    snprintf(m, sizeof m, "%s/m.gguf", dir);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    qs_err err = {0};
    qs_model *model = qs_model_open(m, &err);
    cr_assert_not_null(model, "%s", err.msg);
    const qs_tensor *last = &model->tensors[model->n_tensors - 1];
    for (int64_t i = 0; i < model->n_tensors; i++)
        if (model->tensors[i].data > last->data) last = &model->tensors[i];
    int64_t rows = qs_tensor_nrows(last);
    float *row = malloc((size_t)last->ne[0] * sizeof *row);
    cr_assert_eq(qs_tensor_read_rows(last, rows - 1, 1, row, &err), 0, "%s", err.msg);
    cr_assert_eq(truncate(m, (off_t)model->gguf->data_start), 0); /* another program rewrites the model */
    cr_assert_lt(qs_tensor_read_rows(last, rows - 1, 1, row, &err), 0, "reading a truncated mapping must fail");
    cr_expect(strstr(err.msg, "changed on disk") && strstr(err.msg, last->name), "%s", err.msg);
    /* the writer copies mapped tensor data too */
    qs_gguf_writer *w = qs_gguf_writer_new();
    cr_assert_eq(qs_gguf_writer_add_tensor(w, "t", last->type, 2, (const int64_t[4]){last->ne[0], rows, 1, 1}, last->data, &err), 0,
                 "%s", err.msg);
    cr_expect_lt(qs_gguf_writer_write(w, out, &err), 0);
    cr_expect(strstr(err.msg, "changed on disk"), "%s", err.msg);
    cr_expect_eq(count_tmp(dir), 0);
    qs_gguf_writer_free(w);
    /* other faults still crash as before: the guard only covers guarded reads */
    free(row);
    qs_model_close(model);
    tu_rmtree(dir);
    free(dir);
}

/* A model truncated on disk while the forward pass reads its weights in place (ppl): one error
 * line, exit 2, not a SIGBUS (the lost pages read as zeros and the pass is reported void). */
Test(mapped, truncated_during_ppl_is_an_error_not_sigbus, .timeout = 120)
{
    const char *bin = getenv("QS_BIN");
    if (!bin) tu_skip("QS_BIN not set (make test sets it)");
    char src[4096], text[4096];
    snprintf(src, sizeof src, "%s/stories260K.gguf", tu_models_dir());
    snprintf(text, sizeof text, "%s/../data/tinystories-excerpt.txt", tu_models_dir());
    size_t n;
    uint8_t *d = tu_read(src, &n);
    if (!d) tu_skip("%s missing", src);
    char *dir = tu_tmpdir(), model[4200], cmd[40000], out[4200];
    snprintf(model, sizeof model, "%s/m.gguf", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    FILE *f = fopen(model, "wb");
    fwrite(d, 1, n, f);
    fclose(f);
    free(d);
    /* 393 chunks take seconds; the file loses its last 700 kB a moment after the start */
    snprintf(cmd, sizeof cmd,
             "(%s ppl %s --text %s --ctx 256 > %s 2>&1; echo \"rc=$?\" >> %s) & sleep 0.5; truncate -s 300000 %s; wait", bin,
             model, text, out, out, model);
    cr_assert_eq(system(cmd), 0);
    uint8_t *o = tu_read(out, &n);
    cr_assert_not_null(o);
    char *s = realloc(o, n + 1);
    s[n] = 0;
    cr_expect(strstr(s, "rc=2"), "ppl on a model truncated while running: %s", s);
    cr_expect(strstr(s, "changed on disk") || strstr(s, "quantscope:"), "%s", s);
    free(s);
    tu_rmtree(dir);
    free(dir);
}

/* the side outputs too: train's --log onto its own --data, scan's partial CSV as a FIFO */
Test(output, train_log_and_scan_partial_are_checked, .timeout = 120)
{
    char *dir = tu_tmpdir(), data[4200], copy[4200], fifo[4200], args[20000];
    char src[4096];
    snprintf(src, sizeof src, "%s/../data/tinystories-excerpt.txt", tu_models_dir());
    size_t n;
    uint8_t *t = tu_read(src, &n);
    if (!t) tu_skip("%s missing", src);
    snprintf(data, sizeof data, "%s/d.txt", dir);
    FILE *f = fopen(data, "wb");
    fwrite(t, 1, n < 3000 ? n : 3000, f);
    fclose(f);
    snprintf(args, sizeof args, "train --config tiny --data %s --vocab sample_models/kjv-tiny.gguf -o %s/m.gguf --steps 1 --log %s",
             data, dir, data);
    tu_run_result r = tu_run(args);
    cr_expect_eq(r.status, 1, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "same file as an input"), "%s", r.err);
    tu_run_free(&r);
    size_t m;
    uint8_t *after = tu_read(data, &m);
    cr_expect(after && m == (n < 3000 ? n : 3000) && !memcmp(after, t, m), "train --log replaced its own --data");
    free(after);
    snprintf(fifo, sizeof fifo, "%s/s.csv.partial", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    snprintf(copy, sizeof copy, "%s/s.csv", dir);
    snprintf(args, sizeof args, "scan %s/stories260K.gguf --config q8_0 --text %s --csv %s --chunks 1 </dev/null", tu_models_dir(),
             src, copy);
    r = tu_run(args);
    cr_expect_eq(r.status, 1, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "not a regular file"), "%s", r.err);
    tu_run_free(&r);
    free(t);
    tu_rmtree(dir);
    free(dir);
}
