/* The sensor driver (C twin of ../rust/src/driver.rs), written against the `host_*` functions
 * below so the same code runs in the component (module.c) and in the native transcript test. */
#ifndef SENSOR_DRIVER_DRIVER_H
#define SENSOR_DRIVER_DRIVER_H

#include "json.h" /* the sensor filter's, shared: ../../sensor-filter/c/json.h */

/* What the driver needs from the node; a subset of the WIT `host` interface. Functions that can
 * fail return 0, or -1 with the host's reason appended to `err`. */
int host_emit_output(const char *output, const struct buf *data, struct buf *err);
bool host_state_get(const char *key, struct buf *value);
int host_state_set(const char *key, const void *value, size_t len, struct buf *err);
void host_state_delete(const char *key);

extern const char *const driver_inputs[];
extern const char *const driver_outputs[];
extern const char *const driver_requests[];
extern const char *const driver_handlers[];
extern const char *const driver_entries[];
/* Element counts of the arrays above. */
extern const size_t driver_input_count, driver_output_count, driver_request_count,
    driver_handler_count, driver_entry_count;

/* The guest functions. Each returns 0 (with the response appended to `response`, where there is
 * one) or -1 with the reason appended to `err`. Names are length-delimited and may hold any bytes. */
int driver_on_input(const char *input, size_t input_len, const uint8_t *data, size_t len,
                    struct buf *err);
int driver_on_request(const char *handler, size_t handler_len, const uint8_t *data, size_t len,
                      struct buf *response, struct buf *err);
int driver_call_entry(const char *entry, size_t entry_len, const uint8_t *arg, size_t len,
                      struct buf *response, struct buf *err);

#endif
