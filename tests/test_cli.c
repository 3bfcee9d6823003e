/* The CLI as scripts use it: output, JSON, exit statuses, one-line errors on stderr. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/model/model.h"
#include "tests/testutil.h"

typedef tu_run_result run_result;
#define run tu_run
#define done tu_run_free

static const char *model_path(void)
{
    static char p[4096];
    snprintf(p, sizeof p, "%s/stories260K-Q4_K_M.gguf", tu_models_dir());
    FILE *f = fopen(p, "rb");
    if (!f) tu_skip("%s missing", p);
    fclose(f);
    return p;
}

Test(cli, usage_errors_exit_1)
{
    run_result r = run("");
    cr_assert_eq(r.status, 1, "without a terminal the workbench refuses to start");
    cr_assert(strstr(r.err, "quantscope COMMAND [ARGS]") && strstr(r.err, "needs a terminal"), "%s", r.err);
    done(&r);
    r = run("frobnicate");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "quantscope: unknown command 'frobnicate'"));
    done(&r);
    r = run("info");
    cr_assert_eq(r.status, 1);
    done(&r);
    r = run("info --bogus x");
    cr_assert_eq(r.status, 1);
    done(&r);
    r = run("export m.gguf --preset Q9_K -o x.gguf");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "unknown preset 'Q9_K'"), "%s", r.err);
    done(&r);
    r = run("export m.gguf --preset Q4_K_M --type q8_0 -o x.gguf");
    cr_assert_eq(r.status, 1, "one of --recipe, --type, --preset");
    done(&r);
    r = run("--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "quantscope info MODEL"));
    done(&r);
}

Test(cli, bad_input_exits_2_with_one_line)
{
    run_result r = run("info /nonexistent/model.gguf");
    cr_assert_eq(r.status, 2);
    cr_assert_str_eq(r.err, "quantscope: /nonexistent/model.gguf: no such file or directory\n");
    done(&r);
    char *dir = tu_tmpdir(), path[4096], args[4200];
    snprintf(path, sizeof path, "%s/junk.gguf", dir);
    FILE *f = fopen(path, "wb");
    fputs("GGUF\3\0\0\0garbage", f);
    fclose(f);
    snprintf(args, sizeof args, "info %s", path);
    r = run(args);
    cr_assert_eq(r.status, 2);
    cr_assert(strncmp(r.err, "quantscope: ", 12) == 0 && strstr(r.err, path), "%s", r.err);
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line: %s", r.err);
    done(&r);
    /* an HF checkpoint without a tokenizer: one line, no crash (ppl closed the model twice) */
    if (access("sample_models/kjv-tiny-hf/config.json", R_OK) == 0) {
        snprintf(args, sizeof args, "ppl sample_models/kjv-tiny-hf --text %s", path);
        r = run(args);
        cr_expect_eq(r.status, 2, "%s", r.err);
        cr_expect_str_eq(r.err, "quantscope: sample_models/kjv-tiny-hf: no tokenizer: no tokenizer.json beside the checkpoint\n");
        done(&r);
    }
    tu_rmtree(dir);
    free(dir);
}

Test(cli, info_text_and_json_agree_with_the_model)
{
    const char *p = model_path();
    char args[4200];
    snprintf(args, sizeof args, "info %s", p);
    run_result r = run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "architecture:  llama"));
    cr_assert(strstr(r.out, "blk.4.ffn_down.weight"));
    cr_assert(strstr(r.out, "totals:"));
    done(&r);

    snprintf(args, sizeof args, "info --json %s", p);
    r = run(args);
    cr_assert_eq(r.status, 0);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert_not_null(j, "info --json is not JSON");
    qs_err err = {0};
    qs_model *m = qs_model_open(p, &err);
    cr_assert_not_null(m);
    const cJSON *tensors = cJSON_GetObjectItem(j, "tensors");
    cr_assert_eq(cJSON_GetArraySize(tensors), m->n_tensors);
    double bytes = 0, params = 0;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        bytes += (double)m->tensors[i].nbytes;
        params += (double)qs_tensor_nelements(&m->tensors[i]);
    }
    const cJSON *tot = cJSON_GetObjectItem(j, "totals");
    cr_assert_eq(cJSON_GetObjectItem(tot, "bytes")->valuedouble, bytes);
    cr_assert_eq(cJSON_GetObjectItem(tot, "parameters")->valuedouble, params);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "hparams"), "n_layer")->valueint, 5);
    const cJSON *t0 = cJSON_GetArrayItem(tensors, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(t0, "name")->valuestring, m->tensors[0].name);
    cr_assert_str_eq(cJSON_GetObjectItem(t0, "type")->valuestring, m->tensors[0].dtype);
    qs_model_close(m);
    cJSON_Delete(j);
    done(&r);
}

Test(cli, dump_prints_dequantized_values)
{
    const char *p = model_path();
    char args[4200];
    snprintf(args, sizeof args, "dump %s blk.0.ffn_up.weight --rows 2:4 --cols 3:7", p);
    run_result r = run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    qs_err err = {0};
    qs_model *m = qs_model_open(p, &err);
    const qs_tensor *t = qs_model_find_tensor(m, "blk.0.ffn_up.weight");
    float rows[2 * 64];
    cr_assert_eq(t->ne[0], 64);
    qs_tensor_read_rows(t, 2, 2, rows, &err);
    char *line = r.out;
    for (int row = 0; row < 2; row++) {
        char *end;
        for (int c = 3; c < 7; c++) {
            float v = strtof(line, &end);
            cr_assert_neq(end, line, "row %d col %d missing", row, c);
            cr_assert_eq(v, rows[row * 64 + c], "row %d col %d", row, c);
            line = end;
        }
        cr_assert_eq(*line, '\n');
        line++;
    }
    cr_assert_eq(*line, '\0', "exactly two rows");
    qs_model_close(m);
    done(&r);

    snprintf(args, sizeof args, "dump %s no.such.tensor", p);
    r = run(args);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "no tensor named 'no.such.tensor'"));
    done(&r);
    snprintf(args, sizeof args, "dump %s blk.0.ffn_up.weight --rows 5:1000", p);
    r = run(args);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "range outside the tensor"));
    done(&r);
}

Test(cli, devices_reports_cpu)
{
    run_result r = run("devices");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "cpu:"));
    cr_assert(strstr(r.out, "cuda:"));
    done(&r);
}

/* quant --out on the golden source reproduces llama-quantize's tensor bytes */
static void expect_out_equals(const char *type, const char *qfile, const char *imatrix)
{
    char src[4096], q[4096], im[4096], args[16384];
    snprintf(src, sizeof src, "%s/ggml/synth-a.f32.gguf", tu_golden_dir());
    snprintf(q, sizeof q, "%s/ggml/q/%s", tu_golden_dir(), qfile);
    snprintf(im, sizeof im, "%s/ggml/%s", tu_golden_dir(), imatrix ? imatrix : "");
    FILE *f = fopen(q, "rb");
    if (!f) tu_skip("%s missing", q);
    fclose(f);
    char *dir = tu_tmpdir();
    snprintf(args, sizeof args, "quant %s blk.1.ffn_down.weight --type %s --out %s/t.bin%s%s", src, type, dir,
             imatrix ? " --imatrix " : "", imatrix ? im : "");
    run_result r = run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "MSE") && strstr(r.out, "SQNR"));
    qs_err err = {0};
    qs_model *m = qs_model_open(q, &err);
    cr_assert_not_null(m, "%s", err.msg);
    const qs_tensor *t = qs_model_find_tensor(m, "blk.1.ffn_down.weight");
    char out[4200];
    snprintf(out, sizeof out, "%s/t.bin", dir);
    size_t n;
    uint8_t *got = tu_read(out, &n);
    cr_assert_eq(n, t->nbytes);
    cr_assert_eq(memcmp(got, t->data, n), 0, "%s bytes differ from %s", type, q);
    free(got);
    qs_model_close(m);
    done(&r);
    tu_rmtree(dir);
    free(dir);
}

Test(cli, quant_out_matches_llama_quantize)
{
    expect_out_equals("Q4_K", "pure-Q4_K_M.gguf", NULL);
    expect_out_equals("iq4_xs", "pure-imat-IQ4_XS.gguf", "imatrix-a.gguf");
}

Test(cli, quant_usage_and_methods)
{
    const char *p = model_path();
    char args[4200];
    snprintf(args, sizeof args, "quant %s blk.0.ffn_up.weight --method nope", p);
    run_result r = run(args);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "unknown method 'nope'"), "%s", r.err);
    done(&r);
    snprintf(args, sizeof args, "quant %s blk.0.ffn_up.weight --method rtn --group 100", p);
    r = run(args);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "group size 100 does not divide the 64 columns"), "%s", r.err);
    done(&r);
    snprintf(args, sizeof args, "quant %s blk.0.ffn_up.weight --method rtn --bits 12", p);
    r = run(args);
    cr_assert_eq(r.status, 1);
    done(&r);
    snprintf(args, sizeof args, "quant %s blk.0.ffn_up.weight --compare", p);
    r = run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "q4_K → q5_0"), "fallback shown:\n%s", r.out);
    cr_assert(strstr(r.out, "nf4"));
    done(&r);
    r = run("methods");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "iq4_xs") && strstr(r.out, "--bits"));
    /* ranges in the units users type (damp 0.01, alpha 0.5 or search, ggml by type name) */
    cr_assert(strstr(r.out, "--damp          0.001-0.999 (default 0.01)"), "%s", r.out);
    cr_assert(strstr(r.out, "--alpha         search|0-0.95 (default search)"), "%s", r.out);
    cr_assert(strstr(r.out, "--ggml          grid|q4_0|") && strstr(r.out, "|q4_K|"), "%s", r.out);
    done(&r);
}

Test(cli, vocab_train_generate_round_trip, .timeout = 120)
{
    char *dir = tu_tmpdir(), args[8192], text[4200];
    snprintf(text, sizeof text, "%s/t.txt", dir);
    FILE *f = fopen(text, "w");
    for (int i = 0; i < 50; i++) fprintf(f, "And God said, Let there be light: and there was light.\n");
    fclose(f);
    snprintf(args, sizeof args, "vocab --data %s --size 300 -o %s/v.gguf", text, dir);
    run_result r = run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    done(&r);
    snprintf(args, sizeof args, "train --config gradcheck --data %s --vocab %s/v.gguf --steps 30 --log %s/l.csv -o %s/m.gguf",
             text, dir, dir, dir);
    r = run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "step 30/30") && strstr(r.err, "tok/s") && strstr(r.err, "ETA"), "one-line progress: %s", r.err);
    done(&r);
    snprintf(args, sizeof args, "%s/l.csv", dir);
    size_t n;
    char *log = (char *)tu_read(args, &n);
    cr_assert(log && !strncmp(log, "step,loss,eval_loss,tokens,seconds\n", 35), "loss log");
    free(log);
    snprintf(args, sizeof args, "generate %s/m.gguf -p \"And God\" -n 4 --temp 0", dir);
    r = run(args);
    cr_assert_eq(r.status, 0, "the trained model runs: %s", r.err);
    cr_assert(strstr(r.out, "And God"), "%s", r.out);
    done(&r);
    snprintf(args, sizeof args, "train --config nope --data %s --vocab %s/v.gguf -o %s/x.gguf", text, dir, dir);
    r = run(args);
    cr_assert_eq(r.status, 2, "an unreadable config file is bad input");
    cr_assert(strstr(r.err, "quantscope: nope:"), "%s", r.err);
    done(&r);
    r = run("train --data x");
    cr_assert_eq(r.status, 1);
    done(&r);
    tu_rmtree(dir);
    free(dir);
}

/* Issue 16: a FIFO (or any non-regular file) in place of an input is refused with one line
 * instead of hanging the command. */
Test(cli, fifos_are_refused_not_waited_on, .timeout = 60)
{
    const char *model = model_path();
    char *dir = tu_tmpdir(), fifo[4096], args[9000];
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *cmds[] = {"info %s", "ppl %2$s --text %1$s", "recipe show %s", "export %2$s --recipe %1$s -o %1$s.out.gguf",
                          "ppl %2$s --text /dev/null --recipe %1$s"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        snprintf(args, sizeof args, cmds[i], fifo, model);
        char full[9100];
        snprintf(full, sizeof full, "%s </dev/null", args);
        tu_run_result r = run(full);
        cr_expect_eq(r.status, 2, "%s: %d %s", args, r.status, r.err);
        cr_expect(strstr(r.err, "not a regular file"), "%s: %s", args, r.err);
        cr_expect_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line: %s", r.err);
        done(&r);
    }
    unlink(fifo);
    tu_rmtree(dir);
    free(dir);
}

/* Issue 16: a recipe file that is bad JSON or has wrong types is bad input (exit 2, not 1); a
 * rule beyond the regex engine's limits is "too complex" (exit 2). */
Test(cli, bad_recipe_files_and_complex_rules_exit_2, .timeout = 60)
{
    const char *model = model_path();
    char *dir = tu_tmpdir(), path[4096], args[9000];
    snprintf(path, sizeof path, "%s/r.json", dir);
    const char *bad[] = {"{", "[1,2]", "{\"quantscope_recipe\":1,\"default\":{\"method\":\"q9_Z\"}}",
                         "{\"quantscope_recipe\":1,\"default\":{\"method\":\"rtn\",\"bits\":\"three\"}}",
                         "{\"quantscope_recipe\":1,\"default\":{\"method\":\"rtn\",\"bits\":99}}",
                         "{\"quantscope_recipe\":1,\"rules\":[{\"pattern\":7,\"config\":{\"method\":\"q8_0\"}}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        snprintf(args, sizeof args, "recipe show %s --model %s", path, model);
        tu_run_result r = run(args);
        cr_expect_eq(r.status, 2, "%s: %d %s", bad[i], r.status, r.err);
        done(&r);
    }
    snprintf(args, sizeof args, "recipe %s --set '((a|b|c|d|.)*)*(\\2)+[^a-z._0-9]=f16' -o %s", model, path);
    tu_run_result r = run(args);
    cr_expect_eq(r.status, 2, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "is too complex"), "%s", r.err);
    done(&r);
    snprintf(args, sizeof args, "recipe %s --preset Q4_K_M --set '(.*.*)*[^a-z._0-9]=f16' -o %s", model, path);
    r = run(args);
    cr_expect_eq(r.status, 2, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "rule '(.*.*)*[^a-z._0-9]' is too complex"), "%s", r.err);
    done(&r);
    tu_rmtree(dir);
    free(dir);
}

/* Issue 16: malformed hyperparameters reach no command. A context length of 2³²−1 is bad input
 * (exit 2, not "-1" and exit 1); head counts that do not split the q/k rows, 1-D weights and
 * other inconsistencies make `export --hf` and `export --format gptq|awq` refuse (exit 2) where
 * they overflowed the heap or divided by zero. */
Test(cli, malformed_hyperparameters_exit_2_everywhere, .timeout = 120)
{
    char *dir = tu_tmpdir(), path[4200], args[9000], text[4200];
    snprintf(text, sizeof text, "%s/t.txt", dir);
    FILE *f = fopen(text, "w");
    for (int i = 0; i < 200; i++) fputs("t1 t2 t3 t4 t5 t6 t7 t8 t9 ", f);
    fclose(f);
    struct { const char *name; tu_llama s; const char *why; } c[] = {
        {"ctx", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .n_ctx = 0xffffffffu}, "context_length 4294967295 is beyond"},
        {"heads", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 0xffffffffu, .t_q_rows = 64, .t_kv_rows = 64}, "head_count"},
        {"layers", {.n_layer = 0x7fffffffu, .n_embd = 64, .n_ff = 128, .n_head = 4, .t_layers = 2}, "block_count"},
        {"q1d", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .q_dims = 1}, "not a matrix"},
        {"hd", {.n_layer = 2, .n_embd = 64, .n_ff = 128, .n_head = 4, .n_head_kv = 4, .key_length = 8, .t_q_rows = 64, .t_kv_rows = 64},
         "the hyperparameters say"},
    };
    const char *cmds[] = {"generate %s -p t1 -n 2", "ppl %s --text %s --ctx 16", "export %s --hf %s.hf",
                          "export %s --type rtn:bits=4,group=32 --format gptq -o %s.gptq",
                          "export %s --type awq:bits=4,group=32,asym=true --format awq -o %s.awq --calib %s --calib-ctx 16"};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        snprintf(path, sizeof path, "%s/%s.gguf", dir, c[i].name);
        tu_llama_gguf(path, &c[i].s);
        for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++) {
            snprintf(args, sizeof args, cmds[k], path, k == 1 ? text : path, text);
            tu_run_result r = run(args);
            cr_expect_eq(r.status, 2, "%s: %d %s", args, r.status, r.err);
            cr_expect(strstr(r.err, c[i].why), "%s: %s", args, r.err);
            cr_expect(r.err[0] && strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "one line: %s", r.err);
            done(&r);
        }
    }
    tu_rmtree(dir);
    free(dir);
}

/* Issue 16: no leaks on the error paths of loading a model for inference (a weight that is NaN
 * left the weights read before it behind) or of `suggest` (an infeasible budget left the table):
 * under `make SAN=1 test` LeakSanitizer turns a leak into exit status 23. */
Test(cli, load_and_suggest_error_paths_do_not_leak, .timeout = 300)
{
    char src[4096];
    snprintf(src, sizeof src, "%s/stories260K.gguf", tu_models_dir());
    size_t n;
    uint8_t *d = tu_read(src, &n);
    if (!d) tu_skip("%s missing", src);
    char *dir = tu_tmpdir(), path[4200], args[20000], s1[4200], s2[4200], text[4200];
    /* NaN in a norm (the engine reads vectors into floats at load; matrices stay packed) */
    qs_err e = {0};
    qs_model *m = qs_model_open(src, &e);
    cr_assert_not_null(m, "%s", e.msg);
    const qs_tensor *norm = qs_model_find_tensor(m, "blk.4.ffn_norm.weight");
    cr_assert_not_null(norm);
    uint8_t *at = memmem(d, n, norm->data, 32);
    cr_assert_not_null(at);
    memset(at, 0xff, (size_t)norm->nbytes);
    qs_model_close(m);
    snprintf(path, sizeof path, "%s/nan.gguf", dir);
    FILE *f = fopen(path, "wb");
    fwrite(d, 1, n, f);
    fclose(f);
    free(d);
    snprintf(text, sizeof text, "%s/t.txt", dir);
    f = fopen(text, "w");
    for (int i = 0; i < 300; i++) fputs("Once upon a time there was a little girl who liked to play. ", f);
    fclose(f);
    snprintf(args, sizeof args, "ppl %s --text %s --ctx 64", path, text);
    tu_run_result r = run(args);
    cr_expect_eq(r.status, 2, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "is NaN"), "%s", r.err);
    done(&r);
    snprintf(s1, sizeof s1, "%s/q4_0.csv", dir);
    snprintf(s2, sizeof s2, "%s/q8_0.csv", dir);
    const char *cfg[] = {"q4_0", "q8_0"}, *csv[] = {s1, s2};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "scan %s --config %s --text %s --csv %s --per tensor --ctx 128 --chunks 2", src, cfg[k], text, csv[k]);
        r = run(args);
        cr_assert_eq(r.status, 0, "%s", r.err);
        done(&r);
    }
    snprintf(args, sizeof args, "suggest %s --scans %s,%s --bpw 1 -o %s/r.json", src, s1, s2, dir);
    r = run(args);
    cr_expect(r.status == 1 || r.status == 2, "%d %s", r.status, r.err);
    cr_expect(strstr(r.err, "below the cheapest choice"), "%s", r.err);
    done(&r);
    snprintf(args, sizeof args, "suggest %s --scans %s,%s --bpw 6 -o %s/r.json --pareto", src, s1, s2, dir);
    r = run(args);
    cr_expect_eq(r.status, 0, "%d %s", r.status, r.err);
    done(&r);
    tu_rmtree(dir);
    free(dir);
}

/* ppl --act / --smooth and `acts` on the test model: usage errors exit 1 with one line; a run
 * prints what it simulated; acts lists every linear input */
Test(cli, activation_quantization_options, .timeout = 120)
{
    const char *m = "sample_models/kjv-tiny.gguf", *text = "build/kjv/eval.txt", *cal = "build/kjv/calib.txt";
    if (access(m, R_OK) || access(text, R_OK) || access(cal, R_OK)) tu_skip("%s or the kjv texts missing", m);
    char args[1024];
    const char *bad[] = {"--act int9:dynamic", "--act int8:static", "--smooth 0.5", "--act int8:dynamic --smooth 2",
                         "--act"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "ppl %s --text %s --ctx 64 --chunks 2 %s", m, text, bad[i]);
        run_result r = run(args);
        cr_expect_eq(r.status, 1, "%s: %d %s", bad[i], r.status, r.err);
        cr_expect(!strncmp(r.err, "quantscope: ", 12) && strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "%s: %s", bad[i], r.err);
        done(&r);
    }
    snprintf(args, sizeof args, "ppl %s --text %s --ctx 64 --chunks 4 --act int8:static:per-channel --calib %s --calib-chunks 2 --smooth 0.5",
             m, text, cal);
    run_result r = run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "activations: int8:static:per-channel at every linear input, smoothed with α = 0.5"), "%s", r.err);
    cr_assert(strstr(r.out, "Final estimate: PPL = "), "%s", r.out);
    done(&r);
    snprintf(args, sizeof args, "acts %s --calib %s --calib-chunks 2 --calib-ctx 64 --act int4:static", m, cal);
    r = run(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    /* 2 blocks × 4 inputs + the output projection (tied: token_embd) */
    cr_assert(strstr(r.out, "blk.0.attn_q,attn_k,attn_v "), "%s", r.out);
    cr_assert(strstr(r.out, "blk.1.ffn_down "), "%s", r.out);
    cr_assert(strstr(r.out, "token_embd "), "%s", r.out);
    /* the output errors: one line a weight, 4-bit static ranges err by percents, not 0 or 100 % */
    const char *e = strstr(r.out, "output error of each linear product with int4:static:per-tensor activations");
    cr_assert(e, "%s", r.out);
    const char *q = strstr(e, "blk.0.attn_q.weight");
    cr_assert(q, "%s", e);
    double pct = strtod(q + strlen("blk.0.attn_q.weight"), NULL);
    cr_assert(pct > 0.5 && pct < 60, "attn_q output error %g %%", pct);
    done(&r);
}
