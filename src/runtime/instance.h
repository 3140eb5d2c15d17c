// Instance: one sandboxed (or plain) process running one deployment's code,
// reached over a Unix socket speaking the instance protocol. Many requests
// run on it at once, each on its own stream.
//
// Lifecycle: launch() -> waitHello() (a generic "stem" is now ready) ->
// specialize() (loads a deployment) -> open() calls -> stop() or kill().
// When the process exits, every open call fails with kUnavailable naming how
// it ended; state() becomes kDead.
//
// Threading: socket I/O runs on the instance's own strand (common/executors.h). Every public
// method may be called from any thread; awaitables complete on the caller's
// executor.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/deadlines.h"
#include "common/wakeup.h"
#include "runtime/launcher.h"
#include "runtime/mailbox.h"
#include "runtime/protocol.h"

namespace nubo::runtime {

struct SpecializeInfo {
  std::string deployment;
  std::string app;
  std::string dir;    // the deployment's files, as the instance sees them
  std::string entry;  // relative to dir
  std::map<std::string, std::string> env;
  std::string runtime = "node";  // "exec": `entry` is the command of an HTTP server to run and proxy to
};

// Receives each line an instance writes to stdout ("stdout") or stderr.
using LineSink = std::function<void(std::string_view stream, std::string_view line)>;

class Instance;

// The caller's end of one request stream.
class Call {
 public:
  Call(std::shared_ptr<Instance> inst, uint32_t id, std::shared_ptr<Mailbox> box)
      : inst_(std::move(inst)), id_(id), box_(std::move(box)) {}
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // RESPONSE, DATA or ERROR frames of this stream, in order.
  boost::asio::awaitable<Result<protocol::Frame>> next(Deadline deadline) { return box_->next(deadline); }
  void grant(uint32_t bytes);
  // Sends request body bytes as the instance's window allows (`end`: the
  // body is complete). Fails when the stream is closed or sending stopped.
  boost::asio::awaitable<Status> sendBody(std::string_view bytes, bool end, Deadline deadline);
  // Ends a sendBody() waiting for window (the response is complete).
  void stopSending() { box_->stopSending(); }
  // Tells the instance to stop working on this request.
  void cancel();
  // cancel(), and next() fails with `why` (the client's side failed).
  void abort(Status why);
  void markDone() { done_ = true; }

 private:
  std::shared_ptr<Instance> inst_;
  uint32_t id_;
  std::shared_ptr<Mailbox> box_;
  bool done_ = false;
};

class Instance : public std::enable_shared_from_this<Instance> {
 public:
  enum class State { kStarting, kStem, kSpecializing, kReady, kStopping, kDead };

  // Starts the process: `spec` gets its channel and output fds filled in.
  // `threads`: how many threads run `ioc` (0: unknown).
  static Result<std::shared_ptr<Instance>> launch(boost::asio::io_context& ioc, int threads, Launcher& launcher,
                                                  LaunchSpec spec, std::string label, LineSink sink);
  ~Instance();

  boost::asio::awaitable<Status> waitHello(Deadline deadline);
  // Returns the code load time in ms. `after_send` runs once SPECIALIZE is
  // queued: requests opened then are served as soon as the code is loaded.
  boost::asio::awaitable<Result<double>> specialize(const SpecializeInfo& info, Deadline deadline,
                                                    const std::function<void()>& after_send = {});

  // Starts a request. `head` per docs/protocol.md; `end` when `body` is all
  // of it; `upgrade`: it asks to switch protocols (a WebSocket handshake).
  Result<std::shared_ptr<Call>> open(boost::asio::any_io_executor caller, std::string_view head,
                                     std::string_view body, bool end, bool upgrade = false);

  // Closes the socket: the runtime exits on its own; killed if it lingers.
  void stop();
  void kill();

  State state() const { return state_.load(); }
  pid_t pid() const { return pid_; }
  const std::string& label() const { return label_; }
  // Where its I/O runs (compare with a caller's executor: same shard).
  const boost::asio::any_io_executor& executor() const { return strand_; }
  int inflight() const { return inflight_.load(); }
  int waitUntilPending() const { return wait_until_.load(); }
  Clock::time_point startedAt() const { return started_; }
  // Why the process ended ("exited with status 1", "killed by signal 9"), once dead.
  std::string exitReason() const;

  // Runs once when the process has exited (on the instance strand); a
  // non-empty result replaces the exit reason (e.g. "ran out of memory").
  void onExit(std::function<std::string()> hook) { exit_hook_ = std::move(hook); }

  // Used by Call.
  void send(std::string bytes);
  void endStream(uint32_t id);

 private:
  Instance(boost::asio::io_context& ioc, int threads, std::string label);
  boost::asio::awaitable<void> readLoop();
  boost::asio::awaitable<void> writeLoop();
  // Strand only: queues bytes for the socket and flushes them once per batch.
  void queueOut(std::string_view bytes);
  void flush();
  boost::asio::awaitable<void> watchExit();
  boost::asio::awaitable<void> pumpOutput(boost::asio::posix::stream_descriptor& pipe, std::string stream);
  void dispatch(protocol::Frame&& f);
  // Installs `box` as the receiver of stream-0 frames (on the strand).
  void setControl(std::shared_ptr<Mailbox> box);
  boost::asio::awaitable<Result<protocol::Frame>> nextControl(protocol::FrameType want, Deadline deadline);
  void onDead(const std::string& exit_reason);
  // Runs `f` on the instance's strand: at once when called on the one
  // thread that runs the io_context, else posted.
  template <class F>
  void onStrand(F&& f);
  bool onOwnThread() const { return one_thread_ && ioc_ex_.running_in_this_thread(); }
  // Moves the state from `from` to `to` unless another thread moved it
  // first (the process ended: kDead; stop() or kill(): kStopping).
  bool advance(State from, State to);

  const bool one_thread_;  // one thread runs the io_context
  boost::asio::io_context::executor_type ioc_ex_;
  boost::asio::any_io_executor strand_;  // serialExecutor(): a strand, or the context with one thread
  boost::asio::local::stream_protocol::socket socket_;   // on strand_
  boost::asio::posix::stream_descriptor pidfd_;          // on strand_
  boost::asio::posix::stream_descriptor out_, err_;      // on strand_
  std::string label_;
  LineSink sink_;
  std::function<std::string()> exit_hook_;
  pid_t pid_ = -1;
  Clock::time_point started_ = Clock::now();

  std::atomic<State> state_{State::kStarting};
  std::atomic<int> inflight_{0};
  std::atomic<int> wait_until_{0};
  std::atomic<uint32_t> next_stream_{1};

  // All below: strand_ only.
  std::unordered_map<uint32_t, std::shared_ptr<Mailbox>> streams_;
  std::shared_ptr<Mailbox> control_;  // stream 0 frames for the current waiter
  std::deque<protocol::Frame> control_pending_;  // stream 0 frames nobody waits for yet
  bool dead_ = false;
  std::string dead_why_;
  std::string protocol_error_;  // set when the instance broke the protocol
  std::string out_buf_;
  bool writing_ = false;       // the asynchronous writer owns the socket's sending side
  bool flush_posted_ = false;

  mutable std::mutex exit_mu_;
  std::string exit_reason_;  // guarded by exit_mu_
};

std::string_view stateName(Instance::State s);

}  // namespace nubo::runtime
