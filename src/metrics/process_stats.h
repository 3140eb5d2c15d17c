// The process's own gauges in Prometheus's standard names
// (process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds), read from /proc/self at each scrape.
#pragma once

#include "metrics/exposition.h"

namespace nubo::metrics {

void collectProcess(Exposition& out);

}  // namespace nubo::metrics
