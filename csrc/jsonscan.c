/* jsonscan.c: see jsonscan.h. A recursive-descent validator whose object walkers know the
 * handful of keys the load generator reads; everything else is validated and skipped.
 * Recursion is bounded by JS_MAX_DEPTH, so the C stack use is bounded too.
 */
#include "jsonscan.h"

#include <stdint.h>
#include <string.h>

typedef const unsigned char *uptr;

typedef struct {
    uptr p, end;
    int depth;
} cur;

enum { K_OTHER, K_CHOICES, K_USAGE, K_ERROR, K_OBJECT, K_TEXT, K_DELTA, K_FINISH, K_CONTENT, K_REASONING };

/* 2^1024 - 2^970, the smallest decimal that rounds to infinity as a double (the tie rounds
 * up, to even). orjson rejects such numbers, so the scanner does too, exactly. */
static const char OVERFLOW_DIGITS[] =
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977"
    "587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845"
    "817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559"
    "699508093042880177904174497792";

static int skip_value(cur *c);

static void skip_ws(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hexval(unsigned ch)
{
    if (ch >= '0' && ch <= '9') return (int)(ch - '0');
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f') return (int)(ch - 'a' + 10);
    return -1;
}

static int hex4(uptr q, uptr end, unsigned *cp)
{
    unsigned v = 0;
    if (end - q < 4) return -1;
    for (int i = 0; i < 4; i++) {
        int h = hexval(q[i]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *cp = v;
    return 0;
}

/* q is just past "\u". A high surrogate must be followed by an escaped low one; a lone
 * surrogate is not a character. Returns the position after the escape(s), or NULL. */
static uptr u_escape(uptr q, uptr end, unsigned *cp)
{
    unsigned hi, lo;
    if (hex4(q, end, &hi)) return NULL;
    q += 4;
    if (hi >= 0xDC00 && hi <= 0xDFFF) return NULL;
    if (hi < 0xD800 || hi > 0xDBFF) {
        *cp = hi;
        return q;
    }
    if (end - q < 6 || q[0] != '\\' || q[1] != 'u' || hex4(q + 2, end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
        return NULL;
    *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    return q + 6;
}

/* q is just past a backslash. */
static uptr escape(uptr q, uptr end)
{
    unsigned cp;
    if (q >= end) return NULL;
    switch (*q) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return q + 1;
    case 'u':
        return u_escape(q + 1, end, &cp);
    default:
        return NULL;
    }
}

/* One strictly valid UTF-8 sequence starting with a non-ASCII byte (no overlongs, no
 * surrogates, nothing above U+10FFFF). Returns the position after it, or NULL. */
static uptr utf8_char(uptr q, uptr end)
{
    unsigned c = q[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return NULL;
    }
    if ((size_t)(end - q) <= need || q[1] < lo || q[1] > hi) return NULL;
    for (size_t i = 2; i <= need; i++)
        if ((q[i] & 0xC0) != 0x80) return NULL;
    return q + need + 1;
}

static int is_plain(unsigned ch) { return ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\'; }

/* Skip plain string bytes, 8 at a time while no byte in the word is a quote, a backslash,
 * a control character or non-ASCII (the usual zero-byte bit tricks; a word that might hold
 * one goes to the byte loop). Strings are most of an event's bytes. */
static uptr skip_plain(uptr q, uptr end)
{
    const uint64_t lo = 0x0101010101010101ULL, hi = 0x8080808080808080ULL;
    while (end - q >= 8) {
        uint64_t w, quote, slash;
        memcpy(&w, q, 8);
        quote = w ^ (lo * '"');
        slash = w ^ (lo * '\\');
        if ((((quote - lo) & ~quote) | ((slash - lo) & ~slash) | ((w - lo * 0x20) & ~w) | w) & hi) break;
        q += 8;
    }
    while (q < end && is_plain(*q))
        q++;
    return q;
}

/* c->p is at the opening quote. Sets the body span and whether it holds escapes. */
static int scan_string(cur *c, js_span *s, int *esc)
{
    uptr start = c->p + 1, q = start, end = c->end;
    int e = 0;
    for (;;) {
        q = skip_plain(q, end);
        if (q >= end) return -1;
        if (*q == '"') break;
        if (*q == '\\') {
            e = 1;
            q = escape(q + 1, end);
        } else if (*q >= 0x80) {
            q = utf8_char(q, end);
        } else {
            return -1; /* raw control character */
        }
        if (!q) return -1;
    }
    s->p = (const char *)start;
    s->n = (size_t)(q - start);
    *esc = e;
    c->p = q + 1;
    return 0;
}

/* Significand digits of a number, read from its first significant digit on, across the
 * decimal point; '0' once they run out. */
typedef struct {
    uptr q, q_end, next, next_end;
} digits;

static unsigned next_digit(digits *d)
{
    if (d->q == d->q_end && d->next) {
        d->q = d->next;
        d->q_end = d->next_end;
        d->next = NULL;
    }
    return d->q < d->q_end ? *d->q++ : '0';
}

/* Whether |number| >= OVERFLOW_DIGITS, given its integer and fraction digit runs (the
 * integer run has no leading zeros by the grammar) and its exponent (clamped). */
static int number_overflows(uptr int_s, uptr int_e, uptr frac_s, uptr frac_e, int64_t exp10)
{
    digits d = {int_s, int_e, frac_s, frac_e};
    int64_t k; /* the value lies in [10^k, 10^(k+1)) */
    if (int_e - int_s > 1 || *int_s != '0') {
        k = (int64_t)(int_e - int_s) - 1 + exp10;
    } else {
        uptr f = frac_s;
        while (f && f < frac_e && *f == '0')
            f++;
        if (!f || f >= frac_e) return 0; /* zero */
        k = exp10 - (int64_t)(f - frac_s) - 1;
        d = (digits){f, frac_e, NULL, NULL};
    }
    if (k != 308) return k > 308;
    for (size_t i = 0; i < sizeof OVERFLOW_DIGITS - 1; i++) {
        unsigned dig = next_digit(&d);
        if (dig != (unsigned char)OVERFLOW_DIGITS[i]) return dig > (unsigned char)OVERFLOW_DIGITS[i];
    }
    return 1;
}

static int is_digit(uptr q, uptr end) { return q < end && *q >= '0' && *q <= '9'; }

static int scan_number(cur *c)
{
    uptr q = c->p, end = c->end, int_s, int_e, frac_s = NULL, frac_e = NULL;
    int64_t exp10 = 0;
    if (q < end && *q == '-') q++;
    if (!is_digit(q, end)) return -1;
    int_s = q;
    if (*q == '0')
        q++;
    else
        while (is_digit(q, end))
            q++;
    int_e = q;
    if (q < end && *q == '.') {
        frac_s = ++q;
        if (!is_digit(q, end)) return -1;
        while (is_digit(q, end))
            q++;
        frac_e = q;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        int neg = 0;
        q++;
        if (q < end && (*q == '+' || *q == '-')) neg = *q++ == '-';
        if (!is_digit(q, end)) return -1;
        for (; is_digit(q, end); q++)
            if (exp10 < 100000000) exp10 = exp10 * 10 + (*q - '0'); /* clamped: far past any double */
        if (neg) exp10 = -exp10;
    }
    c->p = q;
    return number_overflows(int_s, int_e, frac_s, frac_e, exp10) ? -1 : 0;
}

static int literal(cur *c, const char *word, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n)) return -1;
    c->p += n;
    return 0;
}

static int enter(cur *c)
{
    if (++c->depth > JS_MAX_DEPTH) return -1;
    c->p++;
    return 0;
}

/* Step inside the container being walked: 1 = c->p is at the next item, 0 = the container
 * closed (c->p past it), -1 = invalid. *first is 1 before the first item. */
static int next_item(cur *c, int *first, unsigned char close)
{
    skip_ws(c);
    if (c->p >= c->end) return -1;
    if (*c->p == close && *first) {
        /* empty container */
    } else if (*first) {
        *first = 0;
        return 1;
    } else if (*c->p == ',') {
        c->p++;
        skip_ws(c);
        return 1;
    } else if (*c->p != close) {
        return -1;
    }
    c->p++;
    c->depth--;
    return 0;
}

/* Like next_item for an object, and also reads the member's key and the colon, leaving
 * c->p at the member's value. */
static int next_member(cur *c, int *first, js_span *key, int *esc)
{
    int r = next_item(c, first, '}');
    if (r != 1) return r;
    if (c->p >= c->end || *c->p != '"' || scan_string(c, key, esc)) return -1;
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':') return -1;
    c->p++;
    skip_ws(c);
    return 1;
}

static int skip_object(cur *c)
{
    js_span k;
    int first = 1, e, r;
    if (enter(c)) return -1;
    while ((r = next_member(c, &first, &k, &e)) == 1)
        if (skip_value(c)) return -1;
    return r;
}

static int skip_array(cur *c)
{
    int first = 1, r;
    if (enter(c)) return -1;
    while ((r = next_item(c, &first, ']')) == 1)
        if (skip_value(c)) return -1;
    return r;
}

static int skip_value(cur *c)
{
    js_span s;
    int e;
    if (c->p >= c->end) return -1;
    switch (*c->p) {
    case '{': return skip_object(c);
    case '[': return skip_array(c);
    case '"': return scan_string(c, &s, &e);
    case 't': return literal(c, "true", 4);
    case 'f': return literal(c, "false", 5);
    case 'n': return literal(c, "null", 4);
    default: return scan_number(c);
    }
}

/* A scanned string's text: the raw body when it has no escapes, else decoded into buf.
 * Too long a body to be any of the (ASCII, <= 17 characters) words looked for gets an
 * impossible length. */
static js_span text_of(js_span s, int esc, char buf[128])
{
    if (!esc) return s;
    if (s.n > 128) return (js_span){buf, (size_t)-1};
    return (js_span){buf, js_unescape(s.p, s.n, buf)};
}

static int string_is(js_span s, int esc, const char *word, size_t len)
{
    char buf[128];
    s = text_of(s, esc, buf);
    return s.n == len && memcmp(s.p, word, len) == 0;
}

static int key_id(js_span k, int esc)
{
    char buf[128];
    k = text_of(k, esc, buf);
#define IS(word) (memcmp(k.p, word, sizeof word - 1) == 0)
    switch (k.n) { /* a constant-size memcmp compiles to a few integer compares */
    case 4: return IS("text") ? K_TEXT : K_OTHER;
    case 5: return IS("usage") ? K_USAGE : IS("error") ? K_ERROR : IS("delta") ? K_DELTA : K_OTHER;
    case 6: return IS("object") ? K_OBJECT : K_OTHER;
    case 7: return IS("choices") ? K_CHOICES : IS("content") ? K_CONTENT : K_OTHER;
    case 13: return IS("finish_reason") ? K_FINISH : K_OTHER;
    case 17: return IS("reasoning_content") ? K_REASONING : K_OTHER;
    default: return K_OTHER;
    }
#undef IS
}

static int at(const cur *c, unsigned char ch) { return c->p < c->end && *c->p == ch; }

/* What the walk has seen so far; a repeated key overwrites, as in a dict. */
typedef struct {
    js_event *ev;
    int text, delta_content, delta_reasoning; /* non-empty strings */
    int error_key, object_error;
} walk;

/* *flag = the value at c->p is a non-empty string. */
static int nonempty_string(cur *c, int *flag)
{
    js_span s;
    int e;
    *flag = 0;
    if (!at(c, '"')) return skip_value(c);
    if (scan_string(c, &s, &e)) return -1;
    *flag = s.n > 0; /* any escape decodes to at least one character */
    return 0;
}

static int walk_delta(cur *c, walk *w)
{
    js_span k;
    int first = 1, e, r;
    w->delta_content = w->delta_reasoning = 0;
    if (!at(c, '{')) return skip_value(c);
    if (enter(c)) return -1;
    while ((r = next_member(c, &first, &k, &e)) == 1) {
        int id = key_id(k, e);
        if (id == K_CONTENT)
            r = nonempty_string(c, &w->delta_content);
        else if (id == K_REASONING)
            r = nonempty_string(c, &w->delta_reasoning);
        else
            r = skip_value(c);
        if (r) return -1;
    }
    return r;
}

static int walk_finish(cur *c, walk *w)
{
    int e;
    w->ev->has_finish = at(c, '"');
    if (!w->ev->has_finish) return skip_value(c);
    return scan_string(c, &w->ev->finish, &e);
}

static int walk_choice(cur *c, walk *w)
{
    js_span k;
    int first = 1, e, r;
    if (enter(c)) return -1;
    while ((r = next_member(c, &first, &k, &e)) == 1) {
        switch (key_id(k, e)) {
        case K_TEXT: r = nonempty_string(c, &w->text); break;
        case K_DELTA: r = walk_delta(c, w); break;
        case K_FINISH: r = walk_finish(c, w); break;
        default: r = skip_value(c); break;
        }
        if (r) return -1;
    }
    return r;
}

/* "choices": only the first element is looked into. */
static int walk_choices(cur *c, walk *w)
{
    int first = 1, r;
    w->text = w->delta_content = w->delta_reasoning = w->ev->has_finish = 0;
    if (!at(c, '[')) return skip_value(c);
    if (enter(c)) return -1;
    r = next_item(c, &first, ']');
    if (r == 1 && (at(c, '{') ? walk_choice(c, w) : skip_value(c))) return -1;
    while (r == 1 && (r = next_item(c, &first, ']')) == 1)
        if (skip_value(c)) return -1;
    return r;
}

static int walk_usage(cur *c, walk *w)
{
    uptr start = c->p;
    w->ev->has_usage = at(c, '{');
    if (skip_value(c)) return -1;
    w->ev->usage = (js_span){(const char *)start, (size_t)(c->p - start)};
    return 0;
}

static int walk_object_field(cur *c, walk *w)
{
    js_span s;
    int e;
    w->object_error = 0;
    if (!at(c, '"')) return skip_value(c);
    if (scan_string(c, &s, &e)) return -1;
    w->object_error = string_is(s, e, "error", 5);
    return 0;
}

static int walk_top(cur *c, walk *w)
{
    js_span k;
    int first = 1, e, r;
    if (enter(c)) return -1;
    while ((r = next_member(c, &first, &k, &e)) == 1) {
        switch (key_id(k, e)) {
        case K_CHOICES: r = walk_choices(c, w); break;
        case K_USAGE: r = walk_usage(c, w); break;
        case K_OBJECT: r = walk_object_field(c, w); break;
        case K_ERROR: w->error_key = 1; r = skip_value(c); break;
        default: r = skip_value(c); break;
        }
        if (r) return -1;
    }
    return r;
}

int js_scan_event(const char *data, size_t n, js_event *ev)
{
    cur c = {(uptr)data, (uptr)data + n, 0};
    walk w = {ev, 0, 0, 0, 0, 0};
    int r;
    memset(ev, 0, sizeof *ev);
    skip_ws(&c);
    if (at(&c, '{')) {
        ev->is_object = 1;
        r = walk_top(&c, &w);
    } else {
        r = skip_value(&c);
    }
    skip_ws(&c);
    if (r || c.p != c.end) return JS_INVALID;
    ev->content = w.text || w.delta_content || w.delta_reasoning;
    ev->is_error = w.error_key || w.object_error;
    return JS_OK;
}

static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

size_t js_unescape(const char *raw, size_t n, char *out)
{
    uptr q = (uptr)raw, end = q + n;
    char *o = out;
    unsigned cp;
    while (q < end) {
        if (*q != '\\') {
            *o++ = (char)*q++;
            continue;
        }
        switch (*++q) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            q = u_escape(q + 1, end, &cp); /* validated by scan_string: never NULL */
            o = put_utf8(o, cp);
            continue;
        default: *o++ = (char)*q; break; /* " \ / */
        }
        q++;
    }
    return (size_t)(o - out);
}
