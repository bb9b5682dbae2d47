/* A translation unit compiled with one layer's include directories only (test_layers): it includes a header of
 * that layer (HB_PROBE_OWN, must compile) and, when HB_PROBE_ABOVE is defined, a header of the layer above it,
 * which must not be found. */
#include HB_PROBE_OWN
#ifdef HB_PROBE_ABOVE
#include HB_PROBE_ABOVE
#endif

int hb_layer_probe(void);
int hb_layer_probe(void) { return 0; }
