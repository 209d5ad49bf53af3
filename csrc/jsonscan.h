/* jsonscan: a minimal, validating JSON walker for one SSE event's data (pure C, no Python.h).
 *
 * It checks the whole text against RFC 8259 (strings with every escape, \uXXXX surrogate
 * pairs, strict UTF-8, numbers, nesting) and on the way picks out only what the load
 * generator needs from an OpenAI-style stream chunk:
 *   choices[0].text, choices[0].delta.content, choices[0].delta.reasoning_content,
 *   choices[0].finish_reason, usage, and whether the chunk is an error.
 * Keys may come in any order; a repeated key counts with its last value (as a dict would).
 * It never evaluates numbers except to reject those that round to infinity as doubles, and
 * it limits nesting to 1024: both as orjson, the reference the Python twin uses.
 */
#ifndef VARCAS_JSONSCAN_H
#define VARCAS_JSONSCAN_H

#include <stddef.h>

#define JS_MAX_DEPTH 1024

enum { JS_OK = 0, JS_INVALID = -1 };

typedef struct {
    const char *p;
    size_t n;
} js_span;

typedef struct {
    int is_object;  /* the top-level value is an object (else nothing below is set) */
    int content;    /* first choice has non-empty text, delta.content or delta.reasoning_content */
    int has_finish; /* first choice's finish_reason is a string ... */
    js_span finish; /* ... whose raw body (between the quotes, escapes not decoded) is this */
    int has_usage;  /* top-level usage is an object ... */
    js_span usage;  /* ... whose raw bytes, braces included, are this */
    int is_error;   /* top-level "error" key present, or top-level "object" == "error" */
} js_event;

/* Validate data[0:n] as one JSON text and fill *ev. Returns JS_OK or JS_INVALID. */
int js_scan_event(const char *data, size_t n, js_event *ev);

/* Decode the body of a string that js_scan_event accepted into UTF-8 at out (which needs n
 * bytes: decoding never grows). Returns the decoded length. */
size_t js_unescape(const char *raw, size_t n, char *out);

#endif
