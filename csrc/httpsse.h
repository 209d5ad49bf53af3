/* httpsse: incremental HTTP/1.1 response + chunked + Server-Sent Events parser (pure C).
 *
 * One hs_parser follows one response on a keep-alive connection. hs_feed() takes the bytes
 * of one socket read, however they are split, with the time of that read; every content
 * event completed by the read is stamped with that time. It never aborts: malformed input
 * freezes the parser in an error state with a short static message (errmsg).
 *
 * HTTP: status line "HTTP/1.x NNN[ reason]"; 1xx interim heads are skipped; header names are
 * case-insensitive; chunked (last transfer coding) wins over Content-Length; 204/304 have no
 * body; another Transfer-Encoding, or no length at all, means the body runs until close.
 * Lines end in LF with an optional CR before it. Only a 2xx text/event-stream body is parsed
 * as SSE; any other body is kept as an excerpt of its first excerpt_limit bytes.
 * SSE (WHATWG): lines end in CRLF, LF or CR; a leading BOM is dropped; "data" fields are
 * joined with LF and the event is dispatched at a blank line; other fields and comments are
 * ignored. An event's data "[DONE]" marks done_ns; empty data is ignored; anything else must
 * be JSON (see jsonscan.h), and a JSON object whose first choice carries non-empty text is a
 * content event. Invalid UTF-8 inside the JSON is invalid JSON (no replacement characters).
 * Limits: the head (and the trailer section, and any one chunk-size line) <= HS_HEAD_MAX
 * bytes with line ends; one SSE line and one event's joined data <= HS_EVENT_MAX bytes.
 */
#ifndef VARCAS_HTTPSSE_H
#define VARCAS_HTTPSSE_H

#include <stddef.h>
#include <stdint.h>

#define HS_HEAD_MAX ((size_t)64 * 1024)
#define HS_EVENT_MAX ((size_t)16 * 1024 * 1024)

enum { HS_MORE = 0, HS_COMPLETE = 1, HS_ERROR = -1 };

typedef struct {
    char *p;
    size_t len, cap;
} hs_buf;

/* The head being read; published into hs_parser when a final (non-1xx) head ends. */
typedef struct {
    int seen_status, status, minor;
    int conn_close, conn_keep_alive, sse;
    int has_te, chunked, has_length;
    uint64_t length;
} hs_head;

typedef struct {
    /* results (read-only for callers) */
    int status, keep_alive, is_sse, trailing;
    int64_t first_byte_ns, done_ns, end_ns;
    int64_t *tokens; /* content-event times, n_tokens of cap_tokens used */
    size_t n_tokens, cap_tokens;
    int has_usage, has_finish, has_error_event;
    hs_buf usage;       /* raw JSON of the last non-null usage object */
    hs_buf finish;      /* UTF-8 of the last non-null finish_reason */
    hs_buf error_event; /* data of the first in-stream error event */
    hs_buf excerpt;     /* first excerpt_limit bytes of a body that is not SSE-parsed */
    size_t excerpt_limit;
    const char *errmsg; /* static; NULL unless state is error */
    /* private */
    int state, sse_mode, sse_skip_lf, sse_started;
    int64_t now;
    hs_buf line;          /* partial HTTP line (head, chunk-size, trailer) */
    size_t section_bytes; /* bytes of the current head/trailer section or chunk line */
    uint64_t remaining;   /* of the chunk or Content-Length body */
    hs_head head;
    hs_buf sse_line, sse_data;
} hs_parser;

/* Returns 0, or -1 when out of memory. */
int hs_init(hs_parser *p, size_t excerpt_limit);
void hs_free(hs_parser *p);
/* Ready for the next response; keeps buffer capacity. */
void hs_reset(hs_parser *p);
/* Returns HS_MORE, HS_COMPLETE (bytes after completion set trailing) or HS_ERROR. */
int hs_feed(hs_parser *p, const char *data, size_t n, int64_t now_ns);
/* The connection closed: completes a close-delimited body, else changes nothing. */
int hs_eof(hs_parser *p, int64_t now_ns);

#endif
