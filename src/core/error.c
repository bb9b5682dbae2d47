#include "core/core.h"
#include <stdio.h>
#include <string.h>

static _Thread_local char g_err[HB_ERRMSG_MAX];
int hb_log_level = HB_LOG_WARN;

int hb_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return -1;
}

int hb_error_prefix(const char *fmt, ...) {
    char head[HB_ERRMSG_MAX], tail[HB_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(tail, g_err, sizeof tail);
    size_t h = strlen(head);
    while (h > 0 && (head[h - 1] == ' ' || head[h - 1] == ':')) h--; /* the separator is added here, once */
    if (h > sizeof g_err - 3) h = sizeof g_err - 3;
    memcpy(g_err, head, h);
    memcpy(g_err + h, ": ", 2);
    size_t t = strlen(tail);
    if (t > sizeof g_err - h - 3) t = sizeof g_err - h - 3;
    memcpy(g_err + h + 2, tail, t);
    g_err[h + 2 + t] = 0;
    return -1;
}

const char *hb_last_error(void) { return g_err[0] ? g_err : "unknown error"; }
const char *hb_last_error_text(void) { return g_err; }
void hb_clear_error(void) { g_err[0] = 0; }

void hb_log(int level, const char *fmt, ...) {
    if (level > hb_log_level) return;
    static const char *tag[] = {"error: ", "warning: ", "", ""};
    va_list ap;
    va_start(ap, fmt);
    fputs(tag[level < 0 ? 0 : level > 3 ? 3 : level], stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
