// How the server fires a cron run: a GET of the run's path at its
// deployment's immutable URL on the server's own data plane (so routing,
// limits and timeouts are the deployment's), carrying X-Nubo-Cron with the
// schedule and the server's cron key, which the gateway checks before the
// function sees X-Nubo-Cron. Blocking (libcurl), on the scheduler's firing
// threads.
#pragma once

#include <string>

#include "cron/cron_scheduler.h"

namespace nubo::cron {

// `data_url`: "http://127.0.0.1:PORT"; `timeout_s`: the longest a run may take.
Fire loopbackFire(std::string data_url, std::string cron_key, long timeout_s);

}  // namespace nubo::cron
