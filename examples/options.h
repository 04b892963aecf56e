/* Table-driven command-line options for the example programs: one table gives parsing, validation and --help.
 * Header-only and C11, so each example stays a single file that uses only the public API. */
#ifndef LT_EXAMPLE_OPTIONS_H
#define LT_EXAMPLE_OPTIONS_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum opt_kind { OPT_INT, OPT_DOUBLE, OPT_STRING, OPT_FLAG } opt_kind;

typedef struct opt {
    const char *name; /* "--steps" */
    opt_kind kind;
    void *dst;       /* int64_t *, double *, const char **, bool * */
    double min, max; /* accepted range for numbers */
    const char *help;
} opt;

static void opt_usage(FILE *f, const char *prog, const char *summary, const opt *opts, int n) {
    fprintf(f, "usage: %s [options]\n%s\n\noptions:\n", prog, summary);
    for (int i = 0; i < n; i++) {
        const opt *o = &opts[i];
        char def[64] = "";
        if (o->kind == OPT_INT) snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)o->dst);
        if (o->kind == OPT_DOUBLE) snprintf(def, sizeof def, " (default %g)", *(double *)o->dst);
        if (o->kind == OPT_STRING && *(const char **)o->dst)
            snprintf(def, sizeof def, " (default %.40s)", *(const char **)o->dst);
        fprintf(f, "  %-16s %s %s%s\n", o->name, o->kind == OPT_FLAG ? "   " : (o->kind == OPT_STRING ? "S  " : "N  "),
                o->help, def);
    }
    fprintf(f, "  %-16s     this text\n", "--help");
}

/* Parses argv against opts. Returns 0 to run, 1 after printing --help, 2 after printing an error. */
static int opt_parse(int argc, char **argv, const char *summary, const opt *opts, int n) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            opt_usage(stdout, argv[0], summary, opts, n);
            return 1;
        }
        const opt *o = NULL;
        for (int k = 0; k < n && !o; k++)
            if (strcmp(a, opts[k].name) == 0) o = &opts[k];
        if (!o) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", argv[0], a);
            return 2;
        }
        if (o->kind == OPT_FLAG) {
            *(bool *)o->dst = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value (see --help)\n", argv[0], a);
            return 2;
        }
        const char *v = argv[++i];
        if (o->kind == OPT_STRING) {
            *(const char **)o->dst = v;
            continue;
        }
        char *end;
        errno = 0;
        double d = o->kind == OPT_INT ? (double)strtoll(v, &end, 10) : strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno || !isfinite(d) || d < o->min || d > o->max) {
            fprintf(stderr, "%s: bad value '%s' for %s: expected %s in [%g, %g]\n", argv[0], v, a,
                    o->kind == OPT_INT ? "an integer" : "a number", o->min, o->max);
            return 2;
        }
        if (o->kind == OPT_INT)
            *(int64_t *)o->dst = (int64_t)d;
        else
            *(double *)o->dst = d;
    }
    return 0;
}

#endif
