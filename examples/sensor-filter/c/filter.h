/* The sensor filter (C twin of ../rust/src/filter.rs), written against the `host_*` functions
 * below so the same code runs in the component (module.c) and in the native transcript test. */
#ifndef SENSOR_FILTER_FILTER_H
#define SENSOR_FILTER_FILTER_H

#include "json.h"

/* The module's attestation claims, as the host reports them. */
struct claims {
    struct buf name;
    struct buf measurement;
    struct buf platform;
    bool simulated;
};

/* What the filter needs from the node; mirrors the WIT `host` interface. Functions that can fail
 * return 0, or -1 with the host's reason appended to `err`. */
int host_emit_output(const char *output, const struct buf *data, struct buf *err);
void host_log_warn(const struct buf *message);
uint64_t host_now_nanos(void);
bool host_state_get(const char *key, struct buf *value);
int host_state_set(const char *key, const void *value, size_t len, struct buf *err);
void host_state_delete(const char *key);
void host_claims(struct claims *out);

extern const char *const filter_inputs[];
extern const char *const filter_outputs[];
extern const char *const filter_requests[];
extern const char *const filter_handlers[];
extern const char *const filter_entries[];
/* Element counts of the arrays above. */
extern const size_t filter_input_count, filter_output_count, filter_request_count,
    filter_handler_count, filter_entry_count;

/* The guest functions. Each returns 0 (with the response appended to `response`, where there is
 * one) or -1 with the reason appended to `err`. Names are length-delimited and may hold any bytes. */
int filter_on_input(const char *input, size_t input_len, const uint8_t *data, size_t len,
                    struct buf *err);
int filter_on_request(const char *handler, size_t handler_len, const uint8_t *data, size_t len,
                      struct buf *response, struct buf *err);
int filter_call_entry(const char *entry, size_t entry_len, const uint8_t *arg, size_t len,
                      struct buf *response, struct buf *err);

#endif
