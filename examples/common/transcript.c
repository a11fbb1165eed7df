/* Native transcript test of a C example (twin of transcript_harness.rs): replays TRANSCRIPT over a
 * mock node and prints the transcript the module produces, which scripts/build-examples.sh diffs
 * against the file. Linked with the example's own transcript_test.c, which supplies
 * transcript_dispatch. Usage: transcript_test TRANSCRIPT > OUT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transcript.h"

/* An in-memory node: sealed state in a list, a clock that ticks 1 us per read, and what the module
 * emitted and logged since the last call. */
struct entry {
    struct buf key;
    struct buf value;
    struct entry *next;
};
static struct entry *state;
/* The start the transcripts' headers promise, so timestamps in them are stable. */
static uint64_t clock_ns = 1700000000000000000ULL;
static char emit_error[256];
static bool emit_fails;
static struct buf events;

static struct entry **find(const char *key) {
    struct entry **at = &state;
    while (*at && !buf_equals(&(*at)->key, key)) {
        at = &(*at)->next;
    }
    return at;
}

static void state_put(const char *key, const void *value, size_t len) {
    struct entry **at = find(key);
    if (!*at) {
        *at = calloc(1, sizeof **at);
        if (!*at) {
            abort();
        }
        buf_puts(&(*at)->key, key);
    }
    (*at)->value.len = 0;
    buf_put(&(*at)->value, value, len);
}

int host_emit_output(const char *output, const struct buf *data, struct buf *err) {
    if (emit_fails) {
        buf_puts(err, emit_error);
        return -1;
    }
    buf_puts(&events, "emit ");
    buf_puts(&events, output);
    buf_puts(&events, " ");
    buf_put(&events, data->data, data->len);
    buf_puts(&events, "\n");
    return 0;
}

void host_log_warn(const struct buf *message) {
    buf_puts(&events, "log warn ");
    buf_put(&events, message->data, message->len);
    buf_puts(&events, "\n");
}

uint64_t host_now_nanos(void) { return clock_ns += 1000; }

bool host_state_get(const char *key, struct buf *value) {
    struct entry *found = *find(key);
    if (found) {
        buf_put(value, found->value.data, found->value.len);
    }
    return found != NULL;
}

int host_state_set(const char *key, const void *value, size_t len, struct buf *err) {
    (void)err;
    state_put(key, value, len);
    return 0;
}

void host_state_delete(const char *key) {
    struct entry **at = find(key);
    if (*at) {
        struct entry *gone = *at;
        *at = gone->next;
        buf_free(&gone->key);
        buf_free(&gone->value);
        free(gone);
    }
}

/* Splits "a b c d" into "a", "b" and "c d" (missing parts are empty), like the Rust replay. */
static void split(const char *line, struct buf *verb, struct buf *name, struct buf *payload) {
    const char *space = strchr(line, ' ');
    if (!space) {
        buf_puts(verb, line);
        return;
    }
    buf_put(verb, line, (size_t)(space - line));
    const char *rest = space + 1;
    space = strchr(rest, ' ');
    if (!space) {
        buf_puts(name, rest);
        return;
    }
    buf_put(name, rest, (size_t)(space - rest));
    buf_puts(payload, space + 1);
}

/* Applies a `host NAME PAYLOAD` directive, which sets the mock node up for the calls after it. */
static void apply_directive(const char *line, struct buf *name, struct buf *payload) {
    if (buf_equals(name, "emit-fails")) {
        emit_fails = true;
        snprintf(emit_error, sizeof emit_error, "%s", buf_cstr(payload));
    } else if (buf_equals(name, "emit-ok")) {
        emit_fails = false;
    } else if (buf_equals(name, "state-set")) {
        const char *key = buf_cstr(payload);
        const char *space = strchr(key, ' ');
        struct buf owned_key = {0};
        buf_put(&owned_key, key, space ? (size_t)(space - key) : strlen(key));
        const char *value = space ? space + 1 : "";
        state_put(buf_cstr(&owned_key), value, strlen(value));
        buf_free(&owned_key);
    } else {
        fprintf(stderr, "unknown host directive: %s\n", line);
        exit(2);
    }
}

/* Echoes a call, directive or comment and, after a call, regenerates the results the transcript
 * records (events, then `ok` or `err`) from what the module does now. */
static void replay_line(const char *line) {
    struct buf verb = {0}, name = {0}, payload = {0}, response = {0}, err = {0};
    split(line, &verb, &name, &payload);
    int result = 0;
    bool call = true;
    if (buf_equals(&verb, "emit") || buf_equals(&verb, "log") || buf_equals(&verb, "ok") ||
        buf_equals(&verb, "err")) {
        goto done; /* recorded results: regenerated below */
    } else if (buf_equals(&verb, "input")) {
        result = transcript_dispatch(TRANSCRIPT_INPUT, &name, &payload, &response, &err);
    } else if (buf_equals(&verb, "request")) {
        result = transcript_dispatch(TRANSCRIPT_REQUEST, &name, &payload, &response, &err);
    } else if (buf_equals(&verb, "entry")) {
        result = transcript_dispatch(TRANSCRIPT_ENTRY, &name, &payload, &response, &err);
    } else if (buf_equals(&verb, "host")) {
        call = false;
        apply_directive(line, &name, &payload);
    } else {
        call = false; /* comments and blank lines */
    }
    printf("%s\n", line);
    if (call) {
        fwrite(events.data, 1, events.len, stdout);
        events.len = 0;
        if (result < 0) {
            printf("err %.*s\n", (int)err.len, err.data);
        } else if (response.len == 0) {
            printf("ok\n");
        } else {
            printf("ok %.*s\n", (int)response.len, response.data);
        }
    }
done:
    buf_free(&verb);
    buf_free(&name);
    buf_free(&payload);
    buf_free(&response);
    buf_free(&err);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s TRANSCRIPT\n", argv[0]);
        return 2;
    }
    FILE *file = fopen(argv[1], "rb");
    if (!file) {
        perror(argv[1]);
        return 2;
    }
    struct buf line = {0};
    int c;
    do {
        c = fgetc(file);
        if (c == '\n' || (c == EOF && line.len > 0)) {
            if (line.len > 0 && line.data[line.len - 1] == '\r') {
                line.len--;
            }
            replay_line(buf_cstr(&line));
            line.len = 0;
        } else if (c != EOF) {
            char byte = (char)c;
            buf_put(&line, &byte, 1);
        }
    } while (c != EOF);
    fclose(file);
    buf_free(&line);
    return 0;
}
