/* The actuator (C twin of ../rust/src/actuator.rs), written against the `host_*` functions below
 * so the same code runs in the component (module.c) and in the native transcript test. */
#ifndef ACTUATOR_ACTUATOR_H
#define ACTUATOR_ACTUATOR_H

#include "json.h" /* the sensor filter's, shared: ../../sensor-filter/c/json.h */

/* What the actuator needs from the node; a subset of the WIT `host` interface. Functions that
 * can fail return 0, or -1 with the host's reason appended to `err`. */
void host_log_warn(const struct buf *message);
bool host_state_get(const char *key, struct buf *value);
int host_state_set(const char *key, const void *value, size_t len, struct buf *err);

extern const char *const actuator_inputs[];
extern const char *const actuator_outputs[];
extern const char *const actuator_requests[];
extern const char *const actuator_handlers[];
extern const char *const actuator_entries[];
/* Element counts of the arrays above. */
extern const size_t actuator_input_count, actuator_output_count, actuator_request_count,
    actuator_handler_count, actuator_entry_count;

/* The guest functions. Each returns 0 (with the response appended to `response`, where there is
 * one) or -1 with the reason appended to `err`. Names are length-delimited and may hold any bytes. */
int actuator_on_input(const char *input, size_t input_len, const uint8_t *data, size_t len,
                      struct buf *err);
int actuator_on_request(const char *handler, size_t handler_len, const uint8_t *data, size_t len,
                        struct buf *response, struct buf *err);
int actuator_call_entry(const char *entry, size_t entry_len, const uint8_t *arg, size_t len,
                        struct buf *response, struct buf *err);

#endif
