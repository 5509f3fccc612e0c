/*
 * embed.c — driving tapwheel from C through include/tapwheel.h (SPEC §20).
 *
 * Loads a scene (argv[1], e.g. examples/c/symbol_delay.ron), runs it to tick 15 and to its end,
 * printing the probe `out` each time; sets the symbol `link` to 7, which starts a new run from
 * tick 0 with the new channel delay; runs that and prints `out` again. Every call's return code
 * is checked; a failure prints the library's message and exits with the code (the CLI's exit
 * codes: 2 invalid input, 3 deadlock, 4 refused, 1 internal).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "tapwheel.h"

/* Reports a failed call: the engine's message, or the thread's when there is no engine. */
static int failed(const char *call, int code, const tw_engine *e) {
    const char *message = e != NULL ? tw_engine_last_error(e) : tw_last_error();
    fprintf(stderr, "%s returned %d\n%s\n", call, code,
            message != NULL ? message : "(no message)");
    return code;
}

/* Prints every token probe `probe` has recorded: its tick and values. */
static int print_probe(const tw_engine *e, const char *probe) {
    size_t tokens = tw_engine_probe_tokens(e, probe);
    if (tokens == 0 && tw_engine_last_error(e) != NULL) {
        return failed("tw_engine_probe_tokens", TW_INVALID, e);
    }
    printf("probe %s: %zu tokens\n", probe, tokens);
    for (size_t i = 0; i < tokens; i++) {
        uint64_t tick = 0;
        size_t len = 0;
        /* Ask for the size first, then read into a buffer that fits. */
        int rc = tw_engine_probe_read(e, probe, i, &tick, NULL, 0, &len);
        if (rc != TW_OK) {
            return failed("tw_engine_probe_read (size)", rc, e);
        }
        float *values = malloc((len > 0 ? len : 1) * sizeof *values);
        if (values == NULL) {
            fprintf(stderr, "out of memory\n");
            return TW_INTERNAL;
        }
        rc = tw_engine_probe_read(e, probe, i, &tick, values, len, &len);
        if (rc != TW_OK) {
            free(values);
            return failed("tw_engine_probe_read", rc, e);
        }
        printf("  token %zu at tick %" PRIu64 ":", i, tick);
        for (size_t k = 0; k < len; k++) {
            printf(" %g", (double)values[k]);
        }
        printf("\n");
        free(values);
    }
    return TW_OK;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCENE.ron\n", argc > 0 ? argv[0] : "embed");
        return TW_INVALID;
    }
    tw_engine *e = NULL;
    int rc = tw_engine_load(argv[1], &e);
    if (rc != TW_OK) {
        return failed("tw_engine_load", rc, NULL);
    }

    const char *call = "tw_engine_run_until";
    rc = tw_engine_run_until(e, 15);
    if (rc != TW_OK) {
        goto fail;
    }
    printf("paused after tick 15 (link = 2)\n");
    if ((rc = print_probe(e, "out")) != TW_OK) {
        goto done;
    }

    call = "tw_engine_run";
    rc = tw_engine_run(e);
    if (rc != TW_OK) {
        goto fail;
    }
    printf("ended (link = 2)\n");
    if ((rc = print_probe(e, "out")) != TW_OK) {
        goto done;
    }

    /* A new symbol value starts a new run from tick 0; the plan is not recompiled. */
    call = "tw_engine_set_symbol";
    rc = tw_engine_set_symbol(e, "link", 7);
    if (rc != TW_OK) {
        goto fail;
    }
    call = "tw_engine_run";
    rc = tw_engine_run(e);
    if (rc != TW_OK) {
        goto fail;
    }
    printf("ended (link = 7)\n");
    rc = print_probe(e, "out");
    goto done;

fail:
    failed(call, rc, e);
done:
    tw_engine_free(e);
    return rc;
}
