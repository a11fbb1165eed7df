/* The tiny JSON dialect of the sensor filter (C twin of ../rust/src/json.rs): flat objects of
 * ASCII strings and numbers in, JSON strings and ECMAScript-formatted numbers out. */
#ifndef SENSOR_FILTER_JSON_H
#define SENSOR_FILTER_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer; `data` is malloc'd (or NULL when empty) and owned by the buffer. Every
 * allocation failure aborts: inputs are small, so running out of memory is not bad input. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

void buf_put(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *text);
void buf_put_u64(struct buf *b, uint64_t value);
/* Appends a NUL after the contents (not counted in len) so `data` can be used as a C string. */
const char *buf_cstr(struct buf *b);
bool buf_equals(const struct buf *b, const char *text);
void buf_free(struct buf *b);

enum json_kind { JSON_STR, JSON_NUM };

struct json_field {
    struct buf key;
    enum json_kind kind;
    struct buf str; /* JSON_STR: the decoded string (ASCII, may hold NUL) */
    double num;     /* JSON_NUM: finite */
};

struct json_object {
    struct json_field *fields;
    size_t count;
    size_t cap;
};

/* Parses `{"key": value, ...}` with string or number values, keeping field order. Returns 0, or -1
 * with the reason appended to `err` ("malformed JSON at byte N: ..."). */
int json_parse_object(const uint8_t *input, size_t len, struct json_object *out, struct buf *err);
void json_object_free(struct json_object *object);

/* Appends `text` as a JSON string literal. */
void json_write_string(struct buf *out, const void *text, size_t len);
/* Appends a finite number as ECMAScript's Number.prototype.toString does. */
void json_write_number(struct buf *out, double value);

#endif
