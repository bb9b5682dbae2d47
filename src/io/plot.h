/* io/plot: a line chart written as PNG (through io/image's writer), for training curves. Each series is a
 * polyline in its own colour over a shared x axis; y is linear or log10. The frame has a light grid (10
 * divisions); axis values are not drawn (the chart has no font): the caller states the ranges in the PNG's
 * text chunks and in its log. */
#ifndef HB_IO_PLOT_H
#define HB_IO_PLOT_H

#include "core/core.h"

typedef struct {
    const double *x, *y; /* n points; non-finite y (and y <= 0 on a log axis) are skipped */
    int n;
    uint8_t rgb[3];
} hb_plot_series;

/* Draw the series into a width x height PNG at path (atomic). text: NULL or key, value pairs ending NULL (PNG
 * tEXt chunks). Fails with a message naming the file when it cannot be written or sizes are out of 64..8192. */
int hb_plot_png(const char *path, int width, int height, const hb_plot_series *s, int ns, bool log_y,
                const char *const *text);

#endif
