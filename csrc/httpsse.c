/* httpsse.c: see httpsse.h. The parser is a loop over states; each step consumes a prefix
 * of the read. HTTP lines are found with memchr and copied only when they span reads.
 */
#include "httpsse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

enum {
    ST_HEAD,        /* status line and headers */
    ST_CHUNK_SIZE,  /* a chunk-size line */
    ST_CHUNK_DATA,  /* remaining bytes of a chunk */
    ST_CHUNK_END,   /* the empty line after a chunk's data */
    ST_TRAILER,     /* trailer fields after the last chunk */
    ST_BODY_LENGTH, /* remaining bytes of a Content-Length body */
    ST_BODY_CLOSE,  /* a body delimited by the connection closing */
    ST_COMPLETE,
    ST_ERROR
};

static const char OOM[] = "out of memory";

static int buf_reserve(hs_buf *b, size_t extra)
{
    size_t need = b->len + extra, cap = b->cap ? b->cap : 256;
    char *np;
    if (need <= b->cap) return 0;
    while (cap < need)
        cap *= 2;
    np = realloc(b->p, cap);
    if (!np) return -1;
    b->p = np;
    b->cap = cap;
    return 0;
}

static int buf_append(hs_buf *b, const char *d, size_t n)
{
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

static void fail(hs_parser *p, const char *msg)
{
    p->state = ST_ERROR;
    p->errmsg = msg;
}

/* Fail with a message that carries a cap and the max_tokens it came from. */
static void fail_cap(hs_parser *p, const char *what, uint64_t cap)
{
    snprintf(p->errbuf, sizeof p->errbuf, "more than %llu %s for max_tokens %llu", (unsigned long long)cap, what,
             (unsigned long long)p->max_tokens);
    fail(p, p->errbuf);
}

static void complete(hs_parser *p)
{
    p->state = ST_COMPLETE;
    p->end_ns = p->now;
}

/* Enter a state that starts a new counted line or section. */
static void enter(hs_parser *p, int state)
{
    p->state = state;
    p->section_bytes = 0;
}

/* ---- SSE ---------------------------------------------------------------------------- */

static void keep(hs_parser *p, hs_buf *b, int *flag, const char *d, size_t n)
{
    b->len = 0;
    *flag = 1;
    if (buf_append(b, d, n)) fail(p, OOM);
}

static void push_token(hs_parser *p)
{
    if (p->n_tokens == p->cap_tokens) {
        size_t cap = p->cap_tokens ? p->cap_tokens * 2 : 64;
        int64_t *nt = realloc(p->tokens, cap * sizeof *nt);
        if (!nt) {
            fail(p, OOM);
            return;
        }
        p->tokens = nt;
        p->cap_tokens = cap;
    }
    p->tokens[p->n_tokens++] = p->now;
}

static void on_event(hs_parser *p, const char *d, size_t n)
{
    js_event ev;
    if (n == 6 && memcmp(d, "[DONE]", 6) == 0) {
        if (!p->seen_done) p->done_ns = p->now;
        p->seen_done = 1;
        return;
    }
    if (n == 0) return;
    if (p->seen_done) {
        fail(p, "data after [DONE]");
        return;
    }
    if (js_scan_event(d, n, &ev) != JS_OK) {
        fail(p, "invalid JSON in SSE data");
        return;
    }
    if (ev.content) {
        if (p->max_events && p->n_tokens >= p->max_events) {
            fail_cap(p, "content events", p->max_events);
            return;
        }
        push_token(p);
    }
    if (ev.has_finish) {
        p->finish.len = 0;
        p->has_finish = 1;
        if (buf_reserve(&p->finish, ev.finish.n))
            fail(p, OOM);
        else
            p->finish.len = js_unescape(ev.finish.p, ev.finish.n, p->finish.p);
    }
    if (ev.has_usage) keep(p, &p->usage, &p->has_usage, ev.usage.p, ev.usage.n);
    if (ev.is_error && !p->has_error_event) keep(p, &p->error_event, &p->has_error_event, d, n);
}

/* One complete SSE line, terminator excluded. */
static void sse_line(hs_parser *p, const char *s, size_t len)
{
    const char *colon, *v;
    size_t flen, vlen;
    if (!p->sse_started) {
        p->sse_started = 1;
        if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3, len -= 3;
    }
    if (len == 0) { /* blank line: dispatch */
        if (p->sse_data.len) {
            size_t n = p->sse_data.len - 1; /* drop the last joining LF */
            p->sse_data.len = 0;
            on_event(p, p->sse_data.p, n);
        }
        return;
    }
    colon = memchr(s, ':', len);
    flen = colon ? (size_t)(colon - s) : len;
    if (flen != 4 || memcmp(s, "data", 4) != 0) return; /* comment, or a field we ignore */
    v = colon ? colon + 1 : s + len;
    vlen = len - (size_t)(v - s);
    if (vlen && *v == ' ') v++, vlen--;
    if (p->sse_data.len + vlen + 1 > HS_EVENT_MAX) {
        fail(p, "SSE event exceeds 16 MiB");
        return;
    }
    if (buf_reserve(&p->sse_data, vlen + 1)) {
        fail(p, OOM);
        return;
    }
    memcpy(p->sse_data.p + p->sse_data.len, v, vlen);
    p->sse_data.p[p->sse_data.len + vlen] = '\n';
    p->sse_data.len += vlen + 1;
}

/* Offset of the first CR or LF in d[0:n], or n. */
static size_t find_eol(const char *d, size_t n)
{
    const char *lf = memchr(d, '\n', n);
    size_t end = lf ? (size_t)(lf - d) : n;
    const char *cr = memchr(d, '\r', end);
    return cr ? (size_t)(cr - d) : end;
}

static void sse_feed(hs_parser *p, const char *d, size_t n)
{
    size_t i = 0;
    if (p->sse_skip_lf && n) { /* the LF of a CRLF split across reads */
        p->sse_skip_lf = 0;
        i = d[0] == '\n';
    }
    while (i < n && p->state != ST_ERROR) {
        size_t t = find_eol(d + i, n - i);
        hs_buf *b = &p->sse_line;
        if (i + t == n) { /* partial line */
            if (b->len + t > HS_EVENT_MAX)
                fail(p, "SSE event exceeds 16 MiB");
            else if (buf_append(b, d + i, t))
                fail(p, OOM);
            return;
        }
        if (b->len + t > HS_EVENT_MAX) {
            fail(p, "SSE event exceeds 16 MiB");
            return;
        }
        if (b->len) {
            if (buf_append(b, d + i, t)) {
                fail(p, OOM);
                return;
            }
            sse_line(p, b->p, b->len);
            b->len = 0;
        } else {
            sse_line(p, d + i, t);
        }
        i += t;
        if (d[i] == '\r') {
            if (i + 1 == n)
                p->sse_skip_lf = 1;
            else if (d[i + 1] == '\n')
                i++;
        }
        i++;
    }
}

static void body(hs_parser *p, const char *d, size_t n)
{
    if (p->sse_mode) {
        sse_feed(p, d, n);
    } else if (p->excerpt.len < p->excerpt_limit) {
        size_t k = p->excerpt_limit - p->excerpt.len;
        if (buf_append(&p->excerpt, d, n < k ? n : k)) fail(p, OOM);
    }
}

/* ---- HTTP head ---------------------------------------------------------------------- */

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int ieq(const char *s, size_t n, const char *word)
{
    size_t i;
    for (i = 0; i < n && word[i]; i++)
        if (lower((unsigned char)s[i]) != word[i]) return 0;
    return i == n && word[i] == 0;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static void trim(const char **s, size_t *n)
{
    while (*n && is_ows(**s))
        (*s)++, (*n)--;
    while (*n && is_ows((*s)[*n - 1]))
        (*n)--;
}

/* Calls on_token for each comma-separated token (trimmed) of a header value. */
static void tokens(hs_head *h, const char *v, size_t n, void (*on_token)(hs_head *, const char *, size_t))
{
    for (;;) {
        const char *comma = memchr(v, ',', n), *t = v;
        size_t seg = comma ? (size_t)(comma - v) : n, tn = seg;
        trim(&t, &tn);
        on_token(h, t, tn);
        if (!comma) return;
        v += seg + 1;
        n -= seg + 1;
    }
}

static void connection_token(hs_head *h, const char *t, size_t n)
{
    if (ieq(t, n, "close")) h->conn_close = 1;
    if (ieq(t, n, "keep-alive")) h->conn_keep_alive = 1;
}

/* Keeps the first content coding that is not identity (shown in errmsg: printable ASCII). */
static void coding_token(hs_head *h, const char *t, size_t n)
{
    if (h->coding[0] || n == 0 || ieq(t, n, "identity")) return;
    if (n > HS_CODING_SHOWN) n = HS_CODING_SHOWN;
    for (size_t i = 0; i < n; i++)
        h->coding[i] = t[i] >= 0x20 && t[i] < 0x7f ? t[i] : '?';
    h->coding[n] = 0;
}

/* The last transfer coding decides whether the body is chunked. */
static void te_token(hs_head *h, const char *t, size_t n) { h->chunked = ieq(t, n, "chunked"); }

static void status_line(hs_parser *p, const char *s, size_t len)
{
    const char *d = s + 9;
    int digits = len >= 12 && d[0] >= '1' && d[0] <= '5' && d[1] >= '0' && d[1] <= '9' && d[2] >= '0' &&
                 d[2] <= '9';
    if (!digits || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' || s[8] != ' ' ||
        (len > 12 && s[12] != ' ')) {
        fail(p, "malformed status line");
        return;
    }
    p->head.seen_status = 1;
    p->head.minor = s[7] - '0';
    p->head.status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    if (p->head.status >= 200) p->status = p->head.status; /* final, known before the headers */
}

static void content_length(hs_parser *p, const char *v, size_t n)
{
    uint64_t x = 0;
    if (n == 0 || n > 18) goto bad;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') goto bad;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (p->head.has_length && p->head.length != x) goto bad;
    p->head.has_length = 1;
    p->head.length = x;
    return;
bad:
    fail(p, "invalid Content-Length");
}

static void header_line(hs_parser *p, const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len), *v;
    size_t nlen, vlen;
    if (is_ows(s[0])) {
        fail(p, "obsolete header line folding");
        return;
    }
    nlen = colon ? (size_t)(colon - s) : 0;
    if (!nlen || memchr(s, ' ', nlen) || memchr(s, '\t', nlen)) {
        fail(p, "malformed header line");
        return;
    }
    v = colon + 1;
    vlen = len - nlen - 1;
    trim(&v, &vlen);
    if (ieq(s, nlen, "content-length")) {
        content_length(p, v, vlen);
    } else if (ieq(s, nlen, "transfer-encoding")) {
        p->head.has_te = 1;
        tokens(&p->head, v, vlen, te_token);
    } else if (ieq(s, nlen, "connection")) {
        tokens(&p->head, v, vlen, connection_token);
    } else if (ieq(s, nlen, "content-encoding")) {
        tokens(&p->head, v, vlen, coding_token);
    } else if (ieq(s, nlen, "content-type")) {
        const char *semi = memchr(v, ';', vlen);
        if (semi) vlen = (size_t)(semi - v);
        trim(&v, &vlen);
        p->head.sse = ieq(v, vlen, "text/event-stream");
    }
}

/* The blank line after the headers: publish the head and choose how the body is framed. */
static void head_end(hs_parser *p)
{
    hs_head h = p->head;
    int until_close = 0;
    memset(&p->head, 0, sizeof p->head);
    if (h.status < 200) { /* interim 1xx: the real response follows */
        enter(p, ST_HEAD);
        return;
    }
    p->status = h.status;
    p->is_sse = h.sse;
    if (h.status / 100 == 2 && h.coding[0]) { /* varcas sends no Accept-Encoding */
        snprintf(p->errbuf, sizeof p->errbuf, "compressed response (Content-Encoding: %s) that was not asked for",
                 h.coding);
        fail(p, p->errbuf);
        return;
    }
    p->sse_mode = h.status / 100 == 2 && h.sse;
    if (h.status == 204 || h.status == 304) {
        complete(p);
    } else if (h.has_te && h.chunked) {
        enter(p, ST_CHUNK_SIZE);
    } else if (!h.has_te && h.has_length) {
        p->remaining = h.length;
        if (h.length)
            p->state = ST_BODY_LENGTH;
        else
            complete(p);
    } else {
        until_close = 1;
        p->state = ST_BODY_CLOSE;
    }
    p->keep_alive = !until_close && !h.conn_close && (h.minor >= 1 || h.conn_keep_alive);
}

/* ---- HTTP framing lines ------------------------------------------------------------- */

static int hexdigit(char c)
{
    int l = lower((unsigned char)c);
    if (l >= '0' && l <= '9') return l - '0';
    if (l >= 'a' && l <= 'f') return l - 'a' + 10;
    return -1;
}

/* "HEX[ows][;extensions]": extensions are ignored. */
static void chunk_size_line(hs_parser *p, const char *s, size_t len)
{
    uint64_t size = 0;
    size_t i = 0;
    for (; i < len && hexdigit(s[i]) >= 0; i++) {
        if (size >> 59) { /* one more digit would pass 2^63 */
            fail(p, "chunk size overflow");
            return;
        }
        size = size * 16 + (uint64_t)hexdigit(s[i]);
    }
    if (i == 0) {
        fail(p, "malformed chunk size");
        return;
    }
    while (i < len && is_ows(s[i]))
        i++;
    if (i < len && s[i] != ';')
        fail(p, "malformed chunk size");
    else if (size == 0)
        enter(p, ST_TRAILER);
    else {
        p->state = ST_CHUNK_DATA;
        p->remaining = size;
    }
}

static void on_line(hs_parser *p, const char *s, size_t len)
{
    switch (p->state) {
    case ST_HEAD:
        if (!p->head.seen_status)
            status_line(p, s, len);
        else if (len == 0)
            head_end(p);
        else
            header_line(p, s, len);
        break;
    case ST_CHUNK_SIZE: chunk_size_line(p, s, len); break;
    case ST_CHUNK_END:
        if (len)
            fail(p, "missing CRLF after chunk data");
        else
            enter(p, ST_CHUNK_SIZE);
        break;
    default: /* ST_TRAILER: fields are ignored */
        if (len == 0) complete(p);
        break;
    }
}

static const char *too_long(int state)
{
    switch (state) {
    case ST_HEAD: return "response head exceeds 64 KiB";
    case ST_TRAILER: return "trailer section exceeds 64 KiB";
    default: return "chunk size line exceeds 64 KiB";
    }
}

/* Whether the bytes d[0:take] of a status line, of which line.len came before, keep it a
 * possible start of "HTTP/": a peer that is not an HTTP server fails at its first byte. */
static int http_prefix_ok(const hs_parser *p, const char *d, size_t take)
{
    static const char PREFIX[] = "HTTP/";
    for (size_t k = p->line.len; k < 5 && k - p->line.len < take; k++)
        if (d[k - p->line.len] != PREFIX[k]) return 0;
    return 1;
}

/* Consume up to and including the next LF (or all of d, kept for later, if none). */
static size_t take_line(hs_parser *p, const char *d, size_t n)
{
    const char *lf = memchr(d, '\n', n), *s = d;
    size_t take = lf ? (size_t)(lf - d) + 1 : n, so_far = p->line.len + take, len;
    if (p->state == ST_HEAD && !p->head.seen_status && !http_prefix_ok(p, d, take)) {
        fail(p, "response does not start with HTTP/");
        return take;
    }
    if (p->section_bytes + so_far > HS_HEAD_MAX) {
        fail(p, too_long(p->state));
        return take;
    }
    if (!lf || p->line.len) { /* the line spans reads: gather it */
        if (buf_append(&p->line, d, take - (lf != NULL))) {
            fail(p, OOM);
            return take;
        }
        if (!lf) return take;
        s = p->line.p;
    }
    len = so_far - 1;
    p->section_bytes += so_far;
    p->line.len = 0;
    if (len && s[len - 1] == '\r') len--;
    on_line(p, s, len);
    return take;
}

/* Consume body bytes counted by a chunk size or Content-Length. */
static size_t take_counted(hs_parser *p, const char *d, size_t n)
{
    size_t k = n < p->remaining ? n : (size_t)p->remaining;
    body(p, d, k);
    p->remaining -= k;
    if (p->remaining == 0 && p->state != ST_ERROR) {
        if (p->state == ST_CHUNK_DATA)
            enter(p, ST_CHUNK_END);
        else
            complete(p);
    }
    return k;
}

int hs_feed(hs_parser *p, const char *data, size_t n, int64_t now_ns)
{
    size_t i = 0, end = n; /* parse data[0:end]: the bytes within max_bytes */
    if (p->state == ST_ERROR) return HS_ERROR;
    if (n && !p->first_byte_ns && p->state != ST_COMPLETE) p->first_byte_ns = now_ns;
    p->now = now_ns;
    if (p->max_bytes && n > p->max_bytes - p->n_bytes) end = (size_t)(p->max_bytes - p->n_bytes);
    while (i < end && p->state != ST_COMPLETE && p->state != ST_ERROR) {
        switch (p->state) {
        case ST_CHUNK_DATA:
        case ST_BODY_LENGTH: i += take_counted(p, data + i, end - i); break;
        case ST_BODY_CLOSE: body(p, data + i, end - i); i = end; break;
        default: i += take_line(p, data + i, end - i); break;
        }
    }
    p->n_bytes += i;
    if (p->state == ST_ERROR) return HS_ERROR;
    if (p->state != ST_COMPLETE) {
        if (end == n) return HS_MORE;
        fail_cap(p, "response bytes", p->max_bytes);
        return HS_ERROR;
    }
    if (i < n) p->trailing = 1;
    return HS_COMPLETE;
}

int hs_eof(hs_parser *p, int64_t now_ns)
{
    if (p->state == ST_ERROR) return HS_ERROR;
    if (p->state == ST_BODY_CLOSE) {
        p->now = now_ns;
        complete(p);
    }
    return p->state == ST_COMPLETE ? HS_COMPLETE : HS_MORE;
}

void hs_reset(hs_parser *p, uint64_t max_tokens)
{
    hs_parser keep = *p;
    memset(p, 0, sizeof *p);
    p->tokens = keep.tokens;
    p->cap_tokens = keep.cap_tokens;
    p->excerpt_limit = keep.excerpt_limit;
    /* keep every buffer's memory, emptied */
    p->usage = keep.usage, p->finish = keep.finish, p->error_event = keep.error_event;
    p->excerpt = keep.excerpt, p->line = keep.line, p->sse_line = keep.sse_line, p->sse_data = keep.sse_data;
    p->usage.len = p->finish.len = p->error_event.len = p->excerpt.len = 0;
    p->line.len = p->sse_line.len = p->sse_data.len = 0;
    p->state = ST_HEAD;
    p->max_tokens = max_tokens;
    if (max_tokens) {
        p->max_events = HS_EVENTS_PER_TOKEN * max_tokens + HS_EVENTS_BASE;
        p->max_bytes = HS_BYTES_BASE + HS_BYTES_PER_TOKEN * max_tokens;
    }
}

int hs_init(hs_parser *p, size_t excerpt_limit)
{
    memset(p, 0, sizeof *p);
    p->excerpt_limit = excerpt_limit;
    p->state = ST_HEAD;
    p->cap_tokens = 64;
    p->tokens = malloc(p->cap_tokens * sizeof *p->tokens);
    return p->tokens ? 0 : -1;
}

void hs_free(hs_parser *p)
{
    free(p->tokens);
    free(p->usage.p);
    free(p->finish.p);
    free(p->error_event.p);
    free(p->excerpt.p);
    free(p->line.p);
    free(p->sse_line.p);
    free(p->sse_data.p);
    memset(p, 0, sizeof *p);
}
