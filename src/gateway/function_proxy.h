// FunctionProxy: HTTP in front of a function instance. Turns a request into
// a stream of the instance protocol (docs/protocol.md) and the frames that
// come back into the client's response.
//
// - Headers: hop-by-hop ones (and any the client's Connection names) are
//   not passed on; X-Forwarded-* and X-Nubo-Request-Id are the gateway's
//   own, never the client's. HEAD is asked as GET and answered without the
//   body.
// - Bodies flow both ways under the protocol's windows: an upload is
//   pumped to the instance as it arrives, a streamed response is pulled by
//   the server as the client takes it.
// - Failures are answers: at capacity 503 with Retry-After; the code failed
//   to load 500; the handler threw 500 (502 once the response started); the
//   instance died 502; over limits.timeout_ms 504 and the instance is
//   killed; the client went away 499 (in the log).
// - WebSockets: a GET asking for one reaches the function with its
//   handshake (no extensions offered); a 101 from the function hands the
//   connection to a WebSocketRelay, which holds the instance's lease while
//   the socket is open. Any other answer is sent as it is.
//
// Thread-safe; a request runs on its connection's executor.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/awaitable.hpp>
#include <string>
#include <string_view>

#include "http/message.h"
#include "metrics/metrics.h"
#include "gateway/websocket_relay.h"
#include "runtime/functions.h"

namespace nubo::gateway {

class FunctionProxy {
 public:
  // `metrics` (may be null): where failures count, by reason.
  FunctionProxy(runtime::Functions& functions, WebSocketLimits websocket, metrics::Metrics* metrics = nullptr)
      : functions_(functions), websocket_(websocket), metrics_(metrics) {}

  // `path`: within the deployment. `forwarded`: the X-Forwarded-* headers
  // the function gets in place of any the client sent.
  boost::asio::awaitable<http::Response> serve(std::shared_ptr<const runtime::DeploymentSpec> spec, std::string_view path,
                                               const http::Request& req, const std::string& request_id,
                                               runtime::protocol::HeaderList forwarded);

 private:
  runtime::Functions& functions_;
  const WebSocketLimits websocket_;
  metrics::Metrics* metrics_;
};

}  // namespace nubo::gateway
