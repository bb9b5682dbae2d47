/* Line charts as PNG (io/plot.h): ranges from the data, a grid, one 2-pixel polyline per series. */
#include "io/plot.h"
#include "io/image.h"
#include <math.h>
#include <string.h>

#define MARGIN 24

typedef struct {
    uint8_t *rgb;
    int W, H;
} canvas;

static void put(canvas *c, int x, int y, const uint8_t *col) {
    if (x < 0 || y < 0 || x >= c->W || y >= c->H) return;
    memcpy(c->rgb + ((size_t)y * (size_t)c->W + (size_t)x) * 3, col, 3);
}

/* a thick line by stepping along the longer axis */
static void line(canvas *c, double x0, double y0, double x1, double y1, const uint8_t *col, int thick) {
    double dx = x1 - x0, dy = y1 - y0, n = fmax(fabs(dx), fabs(dy));
    int steps = n < 1 ? 1 : (int)ceil(n);
    for (int i = 0; i <= steps; i++) {
        int x = (int)lround(x0 + dx * i / steps), y = (int)lround(y0 + dy * i / steps);
        for (int a = 0; a < thick; a++)
            for (int b = 0; b < thick; b++) put(c, x + a, y + b, col);
    }
}

static bool usable(double y, bool log_y) { return isfinite(y) && (!log_y || y > 0); }

int hb_plot_png(const char *path, int width, int height, const hb_plot_series *s, int ns, bool log_y,
                const char *const *text) {
    if (width < 64 || height < 64 || width > 8192 || height > 8192)
        return hb_error("%s: plot size %dx%d out of 64..8192", path, width, height);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!usable(s[k].y[i], log_y) || !isfinite(s[k].x[i])) continue;
            double y = log_y ? log10(s[k].y[i]) : s[k].y[i];
            xmin = fmin(xmin, s[k].x[i]), xmax = fmax(xmax, s[k].x[i]), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    if (!(xmax > xmin)) xmin = isfinite(xmin) ? xmin - 1 : 0, xmax = xmin + 2;
    if (!(ymax > ymin)) ymin = isfinite(ymin) ? ymin - 1 : 0, ymax = ymin + 2;
    canvas c = {hb_malloc((size_t)width * (size_t)height * 3, "plot"), width, height};
    if (!c.rgb) return -1;
    memset(c.rgb, 255, (size_t)width * (size_t)height * 3);
    const uint8_t grid[3] = {225, 225, 225}, axis[3] = {60, 60, 60};
    double pw = width - 2 * MARGIN, ph = height - 2 * MARGIN;
    for (int i = 0; i <= 10; i++) {
        double gx = MARGIN + pw * i / 10, gy = MARGIN + ph * i / 10;
        line(&c, gx, MARGIN, gx, height - MARGIN, i % 10 ? grid : axis, 1);
        line(&c, MARGIN, gy, width - MARGIN, gy, i % 10 ? grid : axis, 1);
    }
    for (int k = 0; k < ns; k++) {
        bool have = false;
        double px = 0, py = 0;
        for (int i = 0; i < s[k].n; i++) {
            if (!usable(s[k].y[i], log_y) || !isfinite(s[k].x[i])) continue;
            double y = log_y ? log10(s[k].y[i]) : s[k].y[i];
            double qx = MARGIN + pw * (s[k].x[i] - xmin) / (xmax - xmin), qy = height - MARGIN - ph * (y - ymin) / (ymax - ymin);
            if (have) line(&c, px, py, qx, qy, s[k].rgb, 2);
            else line(&c, qx, qy, qx, qy, s[k].rgb, 3);
            px = qx, py = qy, have = true;
        }
    }
    int rc = hb_png_write(path, c.rgb, width, height, text);
    hb_free(c.rgb);
    return rc;
}
