/* The replay half of every C example's native transcript test (twin of transcript_harness.rs): a
 * mock node and the loop that replays a testdata/transcript.txt and prints what the module does. */
#ifndef EXAMPLES_TRANSCRIPT_H
#define EXAMPLES_TRANSCRIPT_H

#include "json.h"

/* Which of the module's entry points a transcript line calls. */
enum transcript_call {
    TRANSCRIPT_INPUT,
    TRANSCRIPT_REQUEST,
    TRANSCRIPT_ENTRY,
};

/* Each example's transcript_test.c defines this, and only this (plus any host function the mock
 * cannot answer for every module, like the filter's claims): the call routed to its module.
 * Returns 0, or -1 with the module's reason appended to `err`. */
int transcript_dispatch(enum transcript_call call, const struct buf *name,
                        const struct buf *payload, struct buf *response, struct buf *err);

/* The mock node's side of the `host_*` functions the modules' headers declare, declared here too
 * so that the compiler checks the definitions against what the modules were written for. A
 * module that needs fewer never calls the rest. */
int host_emit_output(const char *output, const struct buf *data, struct buf *err);
void host_log_warn(const struct buf *message);
uint64_t host_now_nanos(void);
bool host_state_get(const char *key, struct buf *value);
int host_state_set(const char *key, const void *value, size_t len, struct buf *err);
void host_state_delete(const char *key);

#endif
