/* The sensor filter itself (C twin of ../rust/src/filter.rs): alerts when a sensor's reading goes
 * from at-or-below the threshold to above it. All state lives in the node's sealed state. */
#include "filter.h"

#include <string.h>

const char *const filter_inputs[] = {"reading"};
const char *const filter_outputs[] = {"alert"};
const char *const filter_requests[] = {NULL};
const char *const filter_handlers[] = {"latest"};
const char *const filter_entries[] = {"configure", "stats"};
const size_t filter_input_count = 1, filter_output_count = 1, filter_request_count = 0,
             filter_handler_count = 1, filter_entry_count = 2;

/* Sealed-state keys; every per-sensor key carries the `above:` prefix that no fixed key has. */
#define KEY_CONFIG "config"
#define KEY_READINGS "readings"
#define KEY_ALERTS "alerts"
#define KEY_LATEST "latest"
#define KEY_ABOVE_PREFIX "above:"

#define MAX_SENSOR_LEN 64

static bool name_is(const char *name, size_t len, const char *expected) {
    return len == strlen(expected) && memcmp(name, expected, len) == 0;
}

static int field_error(struct buf *err, const char *what, const struct buf *field, const char *tail) {
    buf_puts(err, what);
    json_write_string(err, field->data, field->len);
    buf_puts(err, tail);
    return -1;
}

static int missing(struct buf *err, const char *field) {
    buf_puts(err, "missing field ");
    json_write_string(err, field, strlen(field));
    return -1;
}

static int store(const char *key, const void *value, size_t len, struct buf *err) {
    size_t mark = err->len;
    buf_puts(err, "sealed state: ");
    if (host_state_set(key, value, len, err) < 0) {
        return -1;
    }
    err->len = mark;
    return 0;
}

static int load_counter(const char *key, uint64_t *out, struct buf *err) {
    struct buf bytes = {0};
    *out = 0;
    if (!host_state_get(key, &bytes)) {
        return 0;
    }
    if (bytes.len != 8) {
        buf_free(&bytes);
        buf_puts(err, "sealed state: corrupt ");
        json_write_string(err, key, strlen(key));
        return -1;
    }
    for (int i = 7; i >= 0; i--) {
        *out = *out << 8 | (uint8_t)bytes.data[i];
    }
    buf_free(&bytes);
    return 0;
}

static int store_counter(const char *key, uint64_t value, struct buf *err) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) {
        le[i] = (uint8_t)(value >> (8 * i));
    }
    return store(key, le, sizeof le, err);
}

/* The configured threshold: 0 with *present false when none is stored. */
static int load_threshold(bool *present, double *threshold, struct buf *err) {
    struct buf bytes = {0};
    *present = false;
    if (!host_state_get(KEY_CONFIG, &bytes)) {
        return 0;
    }
    struct json_object config;
    struct buf ignored = {0};
    int parsed = json_parse_object((const uint8_t *)bytes.data, bytes.len, &config, &ignored);
    bool valid = parsed == 0 && config.count == 1 && buf_equals(&config.fields[0].key, "threshold") &&
                 config.fields[0].kind == JSON_NUM;
    if (valid) {
        *present = true;
        *threshold = config.fields[0].num;
    }
    json_object_free(&config);
    buf_free(&ignored);
    buf_free(&bytes);
    if (!valid) {
        buf_puts(err, "sealed state: corrupt \"config\"");
        return -1;
    }
    return 0;
}

static bool valid_sensor_byte(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':' || c == '/';
}

/* `{"sensor": string, "value": number}`; on success *sensor holds the (validated) name. */
static int parse_reading(const uint8_t *data, size_t len, struct buf *sensor, double *value,
                         struct buf *err) {
    struct json_object object;
    int result = json_parse_object(data, len, &object, err);
    const struct json_field *sensor_field = NULL, *value_field = NULL;
    for (size_t i = 0; result == 0 && i < object.count; i++) {
        const struct json_field *field = &object.fields[i];
        if (buf_equals(&field->key, "sensor")) {
            if (sensor_field) {
                result = field_error(err, "duplicate field ", &field->key, "");
            } else if (field->kind != JSON_STR) {
                result = field_error(err, "field ", &field->key, " must be a string");
            }
            sensor_field = field;
        } else if (buf_equals(&field->key, "value")) {
            if (value_field) {
                result = field_error(err, "duplicate field ", &field->key, "");
            } else if (field->kind != JSON_NUM) {
                result = field_error(err, "field ", &field->key, " must be a number");
            }
            value_field = field;
        } else {
            result = field_error(err, "unknown field ", &field->key, "");
        }
    }
    if (result == 0 && !sensor_field) {
        result = missing(err, "sensor");
    }
    if (result == 0 && !value_field) {
        result = missing(err, "value");
    }
    if (result == 0) {
        const struct buf *name = &sensor_field->str;
        bool valid = name->len >= 1 && name->len <= MAX_SENSOR_LEN;
        for (size_t i = 0; valid && i < name->len; i++) {
            valid = valid_sensor_byte(name->data[i]);
        }
        if (valid) {
            buf_put(sensor, name->data, name->len);
            *value = value_field->num;
        } else {
            buf_puts(err, "field \"sensor\" must be 1 to 64 characters from A-Z a-z 0-9 - _ . : /");
            result = -1;
        }
    }
    json_object_free(&object);
    return result;
}

/* Entries and handlers without parameters take an empty payload or `{}`. */
static int expect_no_argument(const uint8_t *data, size_t len, struct buf *err) {
    if (len == 0) {
        return 0;
    }
    struct json_object object;
    int result = json_parse_object(data, len, &object, err);
    if (result == 0 && object.count > 0) {
        result = field_error(err, "unknown field ", &object.fields[0].key, "");
    }
    json_object_free(&object);
    return result;
}

static int emit_alert(const struct buf *sensor, const char *above_key, double value, double threshold,
                      uint64_t now, struct buf *err) {
    uint64_t count;
    if (load_counter(KEY_ALERTS, &count, err) < 0) {
        return -1;
    }
    count++;
    struct buf alert = {0};
    buf_puts(&alert, "{\"sensor\":");
    json_write_string(&alert, sensor->data, sensor->len);
    buf_puts(&alert, ",\"value\":");
    json_write_number(&alert, value);
    buf_puts(&alert, ",\"threshold\":");
    json_write_number(&alert, threshold);
    buf_puts(&alert, ",\"count\":");
    buf_put_u64(&alert, count);
    buf_puts(&alert, ",\"time_ns\":");
    buf_put_u64(&alert, now);
    buf_puts(&alert, "}");
    size_t mark = err->len;
    buf_puts(err, "emitting alert: ");
    int result = host_emit_output("alert", &alert, err);
    buf_free(&alert);
    if (result < 0) {
        return -1;
    }
    err->len = mark;
    if (store_counter(KEY_ALERTS, count, err) < 0 || store(above_key, "1", 1, err) < 0) {
        return -1;
    }

    struct buf message = {0};
    buf_puts(&message, "sensor ");
    buf_put(&message, sensor->data, sensor->len);
    buf_puts(&message, ": value ");
    json_write_number(&message, value);
    buf_puts(&message, " crossed threshold ");
    json_write_number(&message, threshold);
    buf_puts(&message, " (alert ");
    buf_put_u64(&message, count);
    buf_puts(&message, ")");
    host_log_warn(&message);
    buf_free(&message);
    return 0;
}

/* Counts the reading, remembers it as the latest, and alerts on an upward crossing. */
static int on_reading(const uint8_t *data, size_t len, struct buf *err) {
    struct buf sensor = {0};
    double value;
    if (parse_reading(data, len, &sensor, &value, err) < 0) {
        buf_free(&sensor);
        return -1;
    }
    /* Everything that can fail on corrupt state is read before anything is written. */
    bool configured;
    double threshold = 0;
    uint64_t readings;
    if (load_threshold(&configured, &threshold, err) < 0 || load_counter(KEY_READINGS, &readings, err) < 0) {
        buf_free(&sensor);
        return -1;
    }
    readings++;
    uint64_t now = host_now_nanos();

    int result = store_counter(KEY_READINGS, readings, err);
    struct buf latest = {0};
    buf_puts(&latest, "{\"sensor\":");
    json_write_string(&latest, sensor.data, sensor.len);
    buf_puts(&latest, ",\"value\":");
    json_write_number(&latest, value);
    buf_puts(&latest, ",\"time_ns\":");
    buf_put_u64(&latest, now);
    buf_puts(&latest, "}");
    if (result == 0) {
        result = store(KEY_LATEST, latest.data, latest.len, err);
    }
    buf_free(&latest);

    if (result == 0 && configured) {
        struct buf above_key = {0};
        buf_puts(&above_key, KEY_ABOVE_PREFIX);
        buf_put(&above_key, sensor.data, sensor.len);
        struct buf flag = {0};
        bool was_above = host_state_get(buf_cstr(&above_key), &flag);
        buf_free(&flag);
        if (value <= threshold) {
            if (was_above) {
                host_state_delete(above_key.data);
            }
        } else if (!was_above) {
            result = emit_alert(&sensor, above_key.data, value, threshold, now, err);
        }
        buf_free(&above_key);
    }
    buf_free(&sensor);
    return result;
}

/* `{"threshold": number}` is stored as the configuration; the stored bytes are returned. */
static int configure(const uint8_t *arg, size_t len, struct buf *response, struct buf *err) {
    struct json_object object;
    int result = json_parse_object(arg, len, &object, err);
    const struct json_field *threshold = NULL;
    for (size_t i = 0; result == 0 && i < object.count; i++) {
        const struct json_field *field = &object.fields[i];
        if (buf_equals(&field->key, "threshold")) {
            if (threshold) {
                result = field_error(err, "duplicate field ", &field->key, "");
            } else if (field->kind != JSON_NUM) {
                result = field_error(err, "field ", &field->key, " must be a number");
            }
            threshold = field;
        } else {
            result = field_error(err, "unknown field ", &field->key, "");
        }
    }
    if (result == 0 && !threshold) {
        result = missing(err, "threshold");
    }
    if (result == 0) {
        struct buf config = {0};
        buf_puts(&config, "{\"threshold\":");
        json_write_number(&config, threshold->num);
        buf_puts(&config, "}");
        result = store(KEY_CONFIG, config.data, config.len, err);
        if (result == 0) {
            buf_put(response, config.data, config.len);
        }
        buf_free(&config);
    }
    json_object_free(&object);
    return result;
}

/* Readings seen, alerts emitted, the threshold in force and who is counting (the claims). */
static int stats(const uint8_t *arg, size_t len, struct buf *response, struct buf *err) {
    uint64_t readings, alerts;
    bool configured;
    double threshold = 0;
    if (expect_no_argument(arg, len, err) < 0 || load_counter(KEY_READINGS, &readings, err) < 0 ||
        load_counter(KEY_ALERTS, &alerts, err) < 0 || load_threshold(&configured, &threshold, err) < 0) {
        return -1;
    }
    struct claims claims = {0};
    host_claims(&claims);
    buf_puts(response, "{\"readings\":");
    buf_put_u64(response, readings);
    buf_puts(response, ",\"alerts\":");
    buf_put_u64(response, alerts);
    buf_puts(response, ",\"threshold\":");
    if (configured) {
        json_write_number(response, threshold);
    } else {
        buf_puts(response, "null");
    }
    buf_puts(response, ",\"claims\":{\"name\":");
    json_write_string(response, claims.name.data, claims.name.len);
    buf_puts(response, ",\"measurement\":");
    json_write_string(response, claims.measurement.data, claims.measurement.len);
    buf_puts(response, ",\"platform\":");
    json_write_string(response, claims.platform.data, claims.platform.len);
    buf_puts(response, claims.simulated ? ",\"simulated\":true}}" : ",\"simulated\":false}}");
    buf_free(&claims.name);
    buf_free(&claims.measurement);
    buf_free(&claims.platform);
    return 0;
}

/* The latest reading with the time it arrived, or `null` before the first one. */
static int latest(const uint8_t *data, size_t len, struct buf *response, struct buf *err) {
    if (expect_no_argument(data, len, err) < 0) {
        return -1;
    }
    struct buf stored = {0};
    if (host_state_get(KEY_LATEST, &stored)) {
        buf_put(response, stored.data, stored.len);
    } else {
        buf_puts(response, "null");
    }
    buf_free(&stored);
    return 0;
}

static int unknown_port(struct buf *err, const char *kind, const char *name, size_t len) {
    buf_puts(err, "unknown ");
    buf_puts(err, kind);
    buf_puts(err, " ");
    json_write_string(err, name, len);
    return -1;
}

/* Puts "port: " in front of the error that the call which started at `mark` appended. */
static int prefixed(struct buf *err, size_t mark, const char *prefix, int result) {
    if (result < 0) {
        size_t len = strlen(prefix);
        buf_put(err, prefix, len); /* grow by len, then shift the message right */
        memmove(err->data + mark + len, err->data + mark, err->len - len - mark);
        memcpy(err->data + mark, prefix, len);
    }
    return result;
}

int filter_on_input(const char *input, size_t input_len, const uint8_t *data, size_t len,
                    struct buf *err) {
    if (name_is(input, input_len, "reading")) {
        size_t mark = err->len;
        return prefixed(err, mark, "reading: ", on_reading(data, len, err));
    }
    return unknown_port(err, "input", input, input_len);
}

int filter_on_request(const char *handler, size_t handler_len, const uint8_t *data, size_t len,
                      struct buf *response, struct buf *err) {
    if (name_is(handler, handler_len, "latest")) {
        size_t mark = err->len;
        return prefixed(err, mark, "latest: ", latest(data, len, response, err));
    }
    return unknown_port(err, "handler", handler, handler_len);
}

int filter_call_entry(const char *entry, size_t entry_len, const uint8_t *arg, size_t len,
                      struct buf *response, struct buf *err) {
    if (name_is(entry, entry_len, "configure")) {
        size_t mark = err->len;
        return prefixed(err, mark, "configure: ", configure(arg, len, response, err));
    }
    if (name_is(entry, entry_len, "stats")) {
        size_t mark = err->len;
        return prefixed(err, mark, "stats: ", stats(arg, len, response, err));
    }
    return unknown_port(err, "entry", entry, entry_len);
}
