/* The sensor-driver example module in C: binds the `teemesh:module/enclave-module` world (the
 * bindings wit-bindgen generates into ../../sensor-filter/c/bindings) to driver.c, and the
 * driver's host_* to the imports. */
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "enclave_module.h"

/* Import arguments are only read by the host during the call, so they can borrow our memory. */
static enclave_module_string_t borrow_string(const char *text) {
    return (enclave_module_string_t){(uint8_t *)text, strlen(text)};
}

static void take_string(struct buf *into, enclave_module_string_t *string) {
    buf_put(into, string->ptr, string->len);
    enclave_module_string_free(string);
}

int host_emit_output(const char *output, const struct buf *data, struct buf *err) {
    enclave_module_string_t name = borrow_string(output);
    teemesh_module_host_payload_t payload = {(uint8_t *)data->data, data->len};
    enclave_module_string_t host_err;
    if (teemesh_module_host_emit_output(&name, &payload, &host_err)) {
        return 0;
    }
    take_string(err, &host_err);
    return -1;
}

bool host_state_get(const char *key, struct buf *value) {
    enclave_module_string_t name = borrow_string(key);
    enclave_module_list_u8_t stored;
    if (!teemesh_module_host_state_get(&name, &stored)) {
        return false;
    }
    buf_put(value, stored.ptr, stored.len);
    enclave_module_list_u8_free(&stored);
    return true;
}

int host_state_set(const char *key, const void *value, size_t len, struct buf *err) {
    enclave_module_string_t name = borrow_string(key);
    enclave_module_list_u8_t bytes = {(uint8_t *)value, len};
    enclave_module_string_t host_err;
    if (teemesh_module_host_state_set(&name, &bytes, &host_err)) {
        return 0;
    }
    take_string(err, &host_err);
    return -1;
}

void host_state_delete(const char *key) {
    enclave_module_string_t name = borrow_string(key);
    teemesh_module_host_state_delete(&name);
}

/* Export results are freed by the generated post-return functions, so they must be malloc'd. */
static enclave_module_list_string_t string_list(const char *const *names, size_t count) {
    enclave_module_list_string_t list = {NULL, count};
    if (count > 0) {
        list.ptr = calloc(count, sizeof *list.ptr);
        if (!list.ptr) {
            abort();
        }
    }
    for (size_t i = 0; i < count; i++) {
        enclave_module_string_dup(&list.ptr[i], names[i]);
    }
    return list;
}

static bool finish(int result, struct buf *response, exports_teemesh_module_guest_payload_t *ret,
                   struct buf *message, enclave_module_string_t *err) {
    if (result == 0) {
        if (ret) {
            *ret = (exports_teemesh_module_guest_payload_t){(uint8_t *)response->data, response->len};
        }
        buf_free(message);
        return true;
    }
    *err = (enclave_module_string_t){(uint8_t *)message->data, message->len};
    buf_free(response);
    return false;
}

void exports_teemesh_module_guest_describe(exports_teemesh_module_guest_manifest_t *ret) {
    ret->inputs = string_list(driver_inputs, driver_input_count);
    ret->outputs = string_list(driver_outputs, driver_output_count);
    ret->requests = string_list(driver_requests, driver_request_count);
    ret->handlers = string_list(driver_handlers, driver_handler_count);
    ret->entries = string_list(driver_entries, driver_entry_count);
}

/* Arguments of exports are owned by the callee: each function frees them. */
bool exports_teemesh_module_guest_on_input(enclave_module_string_t *input,
                                           exports_teemesh_module_guest_payload_t *data,
                                           enclave_module_string_t *err) {
    struct buf response = {0}, message = {0};
    int result = driver_on_input((const char *)input->ptr, input->len, data->ptr, data->len, &message);
    enclave_module_string_free(input);
    exports_teemesh_module_guest_payload_free(data);
    return finish(result, &response, NULL, &message, err);
}

bool exports_teemesh_module_guest_on_request(enclave_module_string_t *handler,
                                             exports_teemesh_module_guest_payload_t *data,
                                             exports_teemesh_module_guest_payload_t *ret,
                                             enclave_module_string_t *err) {
    struct buf response = {0}, message = {0};
    int result = driver_on_request((const char *)handler->ptr, handler->len, data->ptr, data->len,
                                   &response, &message);
    enclave_module_string_free(handler);
    exports_teemesh_module_guest_payload_free(data);
    return finish(result, &response, ret, &message, err);
}

bool exports_teemesh_module_guest_call_entry(enclave_module_string_t *entry,
                                             exports_teemesh_module_guest_payload_t *arg,
                                             exports_teemesh_module_guest_payload_t *ret,
                                             enclave_module_string_t *err) {
    struct buf response = {0}, message = {0};
    int result = driver_call_entry((const char *)entry->ptr, entry->len, arg->ptr, arg->len, &response,
                                   &message);
    enclave_module_string_free(entry);
    exports_teemesh_module_guest_payload_free(arg);
    return finish(result, &response, ret, &message, err);
}
