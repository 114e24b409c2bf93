/* Offline mode: the same pipeline over JSONL posts from a file or stdin, alerts as JSONL on
 * stdout, the in-memory duplicate store. Analysts backtest rules on history with it. */
#ifndef TW_SCAN_H
#define TW_SCAN_H

#include "config/config.h"

/* path NULL or "-" reads stdin. Returns 0, or a negative tw_err_t (rules refused, I/O). Bad
 * lines are reported on stderr as JSON and do not fail the scan. */
int scan_file(const config_t *cfg, const char *path);

#endif
