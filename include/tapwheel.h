/*
 * tapwheel.h — the C ABI of tapwheel (SPEC §20), a deterministic simulation engine for timed
 * dataflow process networks.
 *
 * Build the library with `cargo build --release --lib` (target/release/libtapwheel.so) and link
 * with `-I include -L target/release -ltapwheel`. C99; usable from C++.
 *
 * Return codes (every `int` function): 0 success, else the command line's exit codes —
 *   TW_INTERNAL 1  a bug (a caught panic) or an environment failure; after a panic the engine
 *                  is poisoned: every call but tw_engine_reset / tw_engine_free returns 1
 *                  until tw_engine_reset succeeds;
 *   TW_INVALID  2  invalid input: a NULL pointer (E490), a string that is not UTF-8 (E491), a
 *                  probe buffer too small (E492), an invalid scene (E1xx, E2xx), an unknown
 *                  probe (E485) or token (E486), an injection the engine refuses (E481-E484), a
 *                  bad symbol, slot or parameter;
 *   TW_DEADLOCK 3  the run ended in a deadlock;
 *   TW_REFUSED  4  a refusal (R3xx), or the run ended `failed`.
 * Nothing unwinds or aborts across this interface on bad input: NULL pointers anywhere give 2.
 *
 * Messages: every diagnostic as the CLI prints it, `error[E105]: message` then a
 * `  --> location` line.
 *   tw_engine_last_error(e): the message of the last call on `e` when it failed, NULL when it
 *     succeeded. Every call taking `e` (except tw_engine_last_error and tw_engine_free) clears
 *     it first. The string belongs to the engine: valid until the next call taking `e`.
 *   tw_last_error(): per thread, the message of the last failed call that had no engine to
 *     record it on (a failed load, or a call given a NULL engine). Valid until the next call
 *     into the library on the same thread.
 *
 * Threads: an engine is not synchronised. Use it from one thread at a time (it may move
 * between threads); distinct engines are independent and may run concurrently.
 *
 * Strings passed in are NUL-terminated UTF-8, only read during the call (nothing keeps them).
 *
 * Functions marked "extension" go beyond the interface SPEC §20 lists.
 */
#ifndef TAPWHEEL_H
#define TAPWHEEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. */
#define TW_OK 0
#define TW_INTERNAL 1
#define TW_INVALID 2
#define TW_DEADLOCK 3
#define TW_REFUSED 4

/* An engine: a loaded, planned scene and its current run. Opaque; owned by the caller from a
 * successful load until tw_engine_free. */
typedef struct tw_engine tw_engine;

/* Loads the scene file `scene_path`, validates and plans it, and stores a new engine in
 * `*out`. Returns 0, or 2 for an unreadable file (E105) or an invalid scene (every diagnostic
 * in the message), 4 for a refusal. On failure `*out` is NULL and tw_last_error() holds the
 * message. The engine runs with the scene's own settings (`run.until`, symbols, slots). */
int tw_engine_load(const char *scene_path, tw_engine **out);

/* Extension: like tw_engine_load, from scene text in RON. Relative file paths in the scene
 * resolve against the working directory; errors are located in `<string>`. */
int tw_engine_load_ron(const char *ron_text, tw_engine **out);

/* Processes every instant up to and including tick `tick`, then pauses; a later run call goes
 * on from there (pausing never changes results). Returns 0 while paused and when the run ended
 * completed, quiescent, at its limit or cancelled; 3 when it ended in a deadlock (the message
 * is the deadlock report); 4 when it ended failed (the message is the failure). Once ended,
 * every run call returns the same code again. */
int tw_engine_run_until(tw_engine *e, uint64_t tick);

/* Extension: runs to the end (open inputs are closed first) and returns the outcome's code as
 * tw_engine_run_until does (0, 3 or 4). */
int tw_engine_run(tw_engine *e);

/* Sets symbol `name` (a channel's `delay: Symbol("name")` reads it) and starts a new run from
 * tick 0: probes, statistics and the clock start over; the plan is not recompiled. Returns 0,
 * or 2 (the engine unchanged). */
int tw_engine_set_symbol(tw_engine *e, const char *name, uint64_t value);

/* Extension: sets slot `slot`'s initial value (slots 0..255; 2 with E106 beyond) and starts a
 * new run from tick 0. On error the engine is unchanged. */
int tw_engine_set_slot(tw_engine *e, uint32_t slot, uint64_t value);

/* Extension: sets kernel parameter `key` ("node.param") and starts a new run from tick 0.
 * Returns 2 with E455 for an unknown parameter or a value the kernel refuses; the engine is
 * then unchanged. */
int tw_engine_set_param(tw_engine *e, const char *key, double value);

/* Extension: starts a new run from tick 0 with the same plan and the symbols, slots and
 * parameters set so far. The one call a poisoned engine accepts; success clears the poison. */
int tw_engine_reset(tw_engine *e);

/* Extension: queues one token of `len` values on the open input `node` (a node with kernel
 * `Inject`), written at tick `tick` and visible downstream after the channel's delay. The
 * values are copied; `values` may be NULL only when `len` is 0. Returns 2 with E481 for a node
 * that is not an open input, E482 a token of another length, E483 a tick the run has passed
 * (or before the input's previous injection), E484 a closed input or an ended run. */
int tw_engine_inject(tw_engine *e, const char *node, uint64_t tick, const float *values,
                     size_t len);

/* Extension: closes the open input `node`: nothing more will be injected; its queued tokens
 * are still delivered. Closing a closed input does nothing. 2 with E481 for a node that is not
 * an `Inject` node, E484 once the run has ended. tw_engine_run closes every open input. */
int tw_engine_close_input(tw_engine *e, const char *node);

/* The number of tokens probe `probe` has recorded so far (readable while the run is paused).
 * 0 for a NULL `e` or `probe` and for an unknown probe (E485), with the message recorded; a
 * known probe with no tokens yet gives 0 with tw_engine_last_error(e) NULL. */
size_t tw_engine_probe_tokens(const tw_engine *e, const char *probe);

/* Reads token `token` (0-based, in arrival order) of probe `probe`: its visible tick into
 * `*tick`, its values (batch x channels x frames, row-major) into `values[0..*len]`, its value
 * count into `*len`. Returns 0.
 * `values == NULL && capacity == 0` asks for the size only: `*tick` and `*len` are stored, 0
 * is returned. Otherwise, when `capacity` is below the token's value count, only `*len` is
 * stored and 2 is returned (E492, naming the capacity needed).
 * 2 also for a NULL `tick`, `len` or `probe` or a NULL `values` with a non-zero capacity
 * (E490), an unknown probe (E485) and a token at or past the number recorded (E486); nothing
 * is written then. */
int tw_engine_probe_read(const tw_engine *e, const char *probe, size_t token, uint64_t *tick,
                         float *values, size_t capacity, size_t *len);

/* The message of the last call on `e` when it failed (non-zero return, or 0 tokens for an
 * unknown probe); NULL when that call succeeded, and for a NULL `e`. Owned by the engine;
 * valid until the next call taking `e`. Never free it. */
const char *tw_engine_last_error(const tw_engine *e);

/* Releases an engine and everything it owns (probe data, messages). NULL does nothing. The
 * pointer must not be used afterwards. */
void tw_engine_free(tw_engine *e);

/* Extension: the calling thread's message of the last failed call that had no engine to
 * record it on: a failed tw_engine_load / tw_engine_load_ron (both clear it first), or a call
 * given a NULL engine. NULL when there is none. Owned by the library; valid until the next
 * call into the library on this thread. Never free it. */
const char *tw_last_error(void);

/* Extension: the library version, e.g. "0.1.0". A static string; never free it. */
const char *tw_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TAPWHEEL_H */
