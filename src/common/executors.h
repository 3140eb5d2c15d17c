// serialExecutor(): the executor for an object whose handlers must run one
// at a time (a connection, an instance's socket).
//
// When more than one thread runs the io_context that is a strand. When
// exactly one does, the context itself runs everything in order, so the
// object uses the context's executor directly: a strand would only add a
// lock, a queue and an extra dispatch to every hand-off (several per proxied
// request).
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

namespace nubo {

// `threads`: how many threads run `ioc` (0 or less: unknown, use strands).
inline boost::asio::any_io_executor serialExecutor(boost::asio::io_context& ioc, int threads) {
  if (threads == 1) return ioc.get_executor();
  return boost::asio::make_strand(ioc);
}

}  // namespace nubo
