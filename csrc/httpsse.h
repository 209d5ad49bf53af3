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
 *
 * Guards, each an error the moment it is certain (so a hostile or confused peer costs one
 * read, not a timeout or unbounded memory):
 * - Every status line (interim and final) must start "HTTP/": the first byte that cannot
 *   continue that prefix fails, before any line end ("response does not start with HTTP/":
 *   an SSH banner, a TLS alert, HTML from a misconfigured port).
 * - A final 2xx head with a Content-Encoding coding other than identity fails at its end:
 *   varcas sends no Accept-Encoding and cannot read a compressed event stream ("compressed
 *   response (Content-Encoding: C) that was not asked for", C = the first such coding, at
 *   most HS_CODING_SHOWN bytes, bytes outside printable ASCII shown as '?'). A non-2xx
 *   response is not failed for it: its status says more.
 * - After data "[DONE]", an event with any data other than "" or another "[DONE]" fails
 *   ("data after [DONE]"): content there would be tokens after the end of the stream, and
 *   usage or an error event would rewrite a finished result. Comments, other fields, empty
 *   events and a repeated [DONE] are keep-alive noise and pass.
 * - Per-request caps, set by hs_reset(p, max_tokens) from the request's max_tokens (0 = no
 *   caps): content events <= HS_EVENTS_PER_TOKEN * max_tokens + HS_EVENTS_BASE, and response
 *   bytes (every byte from the first status line to completion: heads, framing, body) <=
 *   HS_BYTES_BASE + HS_BYTES_PER_TOKEN * max_tokens. The event that would pass the cap is
 *   not recorded ("more than N content events for max_tokens M"); the read that brings byte
 *   cap + 1 of an unfinished response fails after parsing the first cap bytes ("more than N
 *   response bytes for max_tokens M"). Bytes after completion are trailing, not counted.
 *   Why these margins: a server may split a token's text over several events (a multi-byte
 *   character, or a detokenizer that holds text back and flushes it later), so allow 2 per
 *   token, plus 64 for a server that streams some text outside max_tokens; merging tokens
 *   (vLLM's stream intervals, speculative decoding) only lowers the count. The byte cap
 *   bounds what the event cap does not see (events without content, comments, one huge
 *   event, an endless non-SSE body): 4 KiB a token is 2 KiB for each of the two events a
 *   token may take, five to eight times a vLLM chunk (~250-400 bytes with its framing);
 *   the 128 KiB base holds a maximal (64 KiB) head plus the role, usage and [DONE] chunks or
 *   an error body. A server that honours max_tokens never comes near either cap; one that
 *   floods costs at most max_events timestamps and max_bytes of reading.
 */
#ifndef VARCAS_HTTPSSE_H
#define VARCAS_HTTPSSE_H

#include <stddef.h>
#include <stdint.h>

#define HS_HEAD_MAX ((size_t)64 * 1024)
#define HS_EVENT_MAX ((size_t)16 * 1024 * 1024)
#define HS_EVENTS_PER_TOKEN 2
#define HS_EVENTS_BASE 64
#define HS_BYTES_PER_TOKEN ((uint64_t)4 * 1024)
#define HS_BYTES_BASE ((uint64_t)128 * 1024)
#define HS_MAX_TOKENS_LIMIT 4294967295u /* max_tokens accepted by hs_reset: caps fit in 64 bits */
#define HS_CODING_SHOWN 32              /* bytes of an unasked Content-Encoding in errmsg */

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
    char coding[HS_CODING_SHOWN + 1]; /* first Content-Encoding coding not identity, or "" */
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
    const char *errmsg; /* static or errbuf; NULL unless state is error */
    uint64_t max_tokens, max_events, max_bytes; /* per-request caps; 0 = none */
    /* private */
    int state, sse_mode, sse_skip_lf, sse_started, seen_done;
    uint64_t n_bytes; /* response bytes consumed, for max_bytes */
    char errbuf[128]; /* errmsg when it carries numbers or a header's bytes */
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
/* Ready for the next response, with the caps for a request of max_tokens (0: no caps; at
 * most HS_MAX_TOKENS_LIMIT, which the caller checks); keeps buffer capacity. */
void hs_reset(hs_parser *p, uint64_t max_tokens);
/* Returns HS_MORE, HS_COMPLETE (bytes after completion set trailing) or HS_ERROR. */
int hs_feed(hs_parser *p, const char *data, size_t n, int64_t now_ns);
/* The connection closed: completes a close-delimited body, else changes nothing. */
int hs_eof(hs_parser *p, int64_t now_ns);

#endif
