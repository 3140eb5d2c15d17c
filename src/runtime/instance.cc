#include "runtime/instance.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/executors.h"
#include "common/json.h"

namespace nubo::runtime {

namespace asio = boost::asio;
using boost::system::error_code;
using protocol::Frame;
using protocol::FrameType;

namespace {
auto withEc(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }
}  // namespace

std::string_view stateName(Instance::State s) {
  switch (s) {
    case Instance::State::kStarting: return "starting";
    case Instance::State::kStem: return "stem";
    case Instance::State::kSpecializing: return "specializing";
    case Instance::State::kReady: return "ready";
    case Instance::State::kStopping: return "stopping";
    case Instance::State::kDead: return "dead";
  }
  return "dead";
}

// ---- Call -------------------------------------------------------------------

Call::~Call() {
  if (!done_) cancel();
  inst_->endStream(id_);
}

void Call::grant(uint32_t bytes) {
  std::string payload;
  protocol::putU32(payload, bytes);
  std::string f;
  protocol::appendFrame(f, FrameType::kWindow, 0, id_, payload);
  inst_->send(std::move(f));
}

asio::awaitable<Status> Call::sendBody(std::string_view bytes, bool end, Deadline deadline) {
  do {
    size_t n = 0;
    if (!bytes.empty()) {
      Result<size_t> credit = co_await box_->takeCredit(std::min(bytes.size(), protocol::kMaxData), deadline);
      if (!credit.ok()) co_return credit.status();
      n = *credit;
    }
    std::string f;
    protocol::appendFrame(f, FrameType::kData, end && n == bytes.size() ? protocol::kEndStream : 0, id_,
                          bytes.substr(0, n));
    inst_->send(std::move(f));
    bytes.remove_prefix(n);
  } while (!bytes.empty());
  co_return Status::Ok();
}

void Call::abort(Status why) {
  cancel();
  box_->close(std::move(why));
}

void Call::cancel() {
  if (done_) return;
  done_ = true;
  std::string f;
  protocol::appendFrame(f, FrameType::kCancel, 0, id_, {});
  inst_->send(std::move(f));
}

// ---- Instance ---------------------------------------------------------------

Instance::Instance(asio::io_context& ioc, int threads, std::string label)
    : one_thread_(threads == 1),
      ioc_ex_(ioc.get_executor()),
      strand_(serialExecutor(ioc, threads)),
      socket_(strand_),
      pidfd_(strand_),
      out_(strand_),
      err_(strand_),
      label_(std::move(label)) {}

Instance::~Instance() {
  if (pid_ > 0 && state_ != State::kDead) ::kill(pid_, SIGKILL);
}

Result<std::shared_ptr<Instance>> Instance::launch(asio::io_context& ioc, int threads, Launcher& launcher,
                                                   LaunchSpec spec, std::string label, LineSink sink) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return ErrnoStatus("socketpair", errno);
  UniqueFd ours(sv[0]), theirs(sv[1]);
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  UniqueFd err_r(err[0]), err_w(err[1]);
  spec.channel_fd = theirs.get();
  spec.stdout_fd = out_w.get();
  spec.stderr_fd = err_w.get();

  std::shared_ptr<Instance> inst(new Instance(ioc, threads, std::move(label)));
  inst->sink_ = std::move(sink);
  ASSIGN_OR_RETURN(Process proc, launcher.launch(spec));
  inst->pid_ = proc.pid;
  inst->started_ = Clock::now();
  error_code ec;
  inst->socket_.assign(asio::local::stream_protocol(), ours.release(), ec);
  if (!ec) inst->pidfd_.assign(proc.pidfd.release(), ec);
  if (!ec) inst->out_.assign(out_r.release(), ec);
  if (!ec) inst->err_.assign(err_r.release(), ec);
  if (ec) {
    ::kill(proc.pid, SIGKILL);
    return Internal("instance setup: " + ec.message());
  }
  asio::co_spawn(inst->strand_, inst->readLoop(), asio::detached);
  asio::co_spawn(inst->strand_, inst->watchExit(), asio::detached);
  asio::co_spawn(inst->strand_, inst->pumpOutput(inst->out_, "stdout"), asio::detached);
  asio::co_spawn(inst->strand_, inst->pumpOutput(inst->err_, "stderr"), asio::detached);
  return inst;
}

std::string Instance::exitReason() const {
  std::lock_guard lock(exit_mu_);
  return exit_reason_;
}

template <class F>
void Instance::onStrand(F&& f) {
  if (onOwnThread()) {
    f();
  } else {
    asio::post(strand_, std::forward<F>(f));
  }
}

void Instance::send(std::string bytes) {
  onStrand([self = shared_from_this(), bytes = std::move(bytes)]() mutable {
    if (self->dead_) return;
    self->queueOut(bytes);
  });
}

void Instance::queueOut(std::string_view bytes) {
  out_buf_.append(bytes);
  if (writing_ || flush_posted_) return;
  // One flush per batch: frames queued in this turn of the strand go out in
  // one send.
  flush_posted_ = true;
  asio::post(strand_, [self = shared_from_this()] { self->flush(); });
}

void Instance::flush() {
  flush_posted_ = false;
  if (writing_ || dead_ || out_buf_.empty()) return;
  // The socket almost always has room: a plain non-blocking send, and the
  // asynchronous writer only for what does not fit.
  ssize_t n = ::send(socket_.native_handle(), out_buf_.data(), out_buf_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    out_buf_.clear();  // the socket is broken; the read side reports how the instance ended
    return;
  }
  if (n > 0) out_buf_.erase(0, static_cast<size_t>(n));
  if (out_buf_.empty()) return;
  writing_ = true;
  asio::co_spawn(strand_, writeLoop(), asio::detached);
}

void Instance::endStream(uint32_t id) {
  onStrand([self = shared_from_this(), id] {
    if (self->streams_.erase(id)) self->inflight_--;
  });
}

asio::awaitable<void> Instance::writeLoop() {
  auto self = shared_from_this();
  std::string chunk;
  while (!out_buf_.empty()) {
    chunk.clear();
    chunk.swap(out_buf_);
    error_code ec;
    co_await asio::async_write(socket_, asio::buffer(chunk), withEc(ec));
    if (ec) {
      out_buf_.clear();
      break;
    }
  }
  writing_ = false;
}

asio::awaitable<void> Instance::readLoop() {
  auto self = shared_from_this();
  protocol::FrameDecoder decoder;
  std::vector<char> buf(64 << 10);
  for (;;) {
    error_code ec;
    size_t n = co_await socket_.async_read_some(asio::buffer(buf), withEc(ec));
    if (ec) break;
    decoder.feed(buf.data(), n);
    Frame f;
    Result<bool> got = decoder.next(&f);
    for (; got.ok() && *got; got = decoder.next(&f)) dispatch(std::move(f));
    if (!got.ok()) {
      protocol_error_ = "broke the instance protocol (" + got.status().message() + ")";
      break;
    }
  }
  error_code ignored;
  socket_.close(ignored);
  // The process is exiting (or must): watchExit() reports how it ended and
  // fails the open streams. One that lingers without its socket is killed.
  if (!protocol_error_.empty()) {
    kill();
    co_return;
  }
  asio::steady_timer linger(strand_, std::chrono::seconds(1));
  co_await linger.async_wait(withEc(ignored));
  if (!dead_) kill();
}

void Instance::dispatch(Frame&& f) {
  if (f.stream == 0) {
    if (f.type == FrameType::kWaitUntilCount) {
      wait_until_ = f.payload.size() >= 4 ? static_cast<int>(protocol::readU32(f.payload.data())) : 0;
      return;
    }
    if (control_) control_->push(std::move(f));
    else control_pending_.push_back(std::move(f));
    return;
  }
  auto it = streams_.find(f.stream);
  if (it == streams_.end()) return;  // cancelled or finished
  if (f.type == FrameType::kWindow) {
    if (f.payload.size() >= 4) it->second->addCredit(protocol::readU32(f.payload.data()));
    return;
  }
  it->second->push(std::move(f));
}

void Instance::onDead(const std::string& exit_reason) {
  if (dead_) return;
  dead_ = true;
  state_ = State::kDead;
  std::string why = protocol_error_.empty() ? exit_reason : protocol_error_ + " and " + exit_reason;
  dead_why_ = why;
  for (auto& [id, box] : streams_) box->close(Unavailable("instance " + label_ + " " + why));
  inflight_ -= static_cast<int>(streams_.size());
  streams_.clear();
  if (control_) control_->close(Unavailable("instance " + label_ + " " + why));
  // Make sure the process is gone; watchExit reaps it.
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

asio::awaitable<void> Instance::watchExit() {
  auto self = shared_from_this();
  error_code ec;
  co_await pidfd_.async_wait(asio::posix::descriptor_base::wait_read, withEc(ec));
  int status = 0;
  std::string reason;
  if (::waitpid(pid_, &status, 0) == pid_) {
    if (WIFEXITED(status)) reason = "exited with status " + std::to_string(WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) reason = "was killed by signal " + std::to_string(WTERMSIG(status));
  }
  if (exit_hook_) {
    std::string override_reason = exit_hook_();
    if (!override_reason.empty()) reason = override_reason;
  }
  {
    std::lock_guard lock(exit_mu_);
    if (exit_reason_.empty()) exit_reason_ = reason.empty() ? "exited" : reason;
  }
  error_code ignored;
  socket_.close(ignored);
  pidfd_.close(ignored);
  onDead(exitReason());
}

asio::awaitable<void> Instance::pumpOutput(asio::posix::stream_descriptor& pipe, std::string stream) {
  auto self = shared_from_this();
  asio::streambuf buf(1 << 20);  // a longer line is cut
  for (;;) {
    error_code ec;
    size_t n = co_await asio::async_read_until(pipe, buf, '\n', withEc(ec));
    if (ec && ec != asio::error::not_found) {
      if (buf.size() > 0 && sink_) {
        std::string rest(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
        sink_(stream, rest);
      }
      break;
    }
    if (n == 0) n = buf.size();  // buffer full without a newline
    std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(n));
    buf.consume(n);
    if (!line.empty() && line.back() == '\n') line.pop_back();
    if (sink_) sink_(stream, line);
  }
}

void Instance::setControl(std::shared_ptr<Mailbox> box) {
  asio::post(strand_, [self = shared_from_this(), box] {
    self->control_ = box;
    if (self->dead_) {
      box->close(Unavailable("instance " + self->label_ + " " + self->dead_why_));
      return;
    }
    while (!self->control_pending_.empty()) {
      box->push(std::move(self->control_pending_.front()));
      self->control_pending_.pop_front();
    }
  });
}

asio::awaitable<Result<Frame>> Instance::nextControl(FrameType want, Deadline deadline) {
  auto box = std::make_shared<Mailbox>(co_await asio::this_coro::executor);
  setControl(box);
  for (;;) {
    Result<Frame> f = co_await box->next(deadline);
    if (!f.ok() || f->type == want) co_return f;
  }
}

asio::awaitable<Status> Instance::waitHello(Deadline deadline) {
  Result<Frame> f = co_await nextControl(FrameType::kHello, deadline);
  if (!f.ok()) {
    kill();
    co_return f.status().withContext("instance " + label_ + " did not start");
  }
  if (!advance(State::kStarting, State::kStem)) co_return Unavailable("instance " + label_ + " ended as it started");
  co_return Status::Ok();
}

asio::awaitable<Result<double>> Instance::specialize(const SpecializeInfo& info, Deadline deadline,
                                                     const std::function<void()>& after_send) {
  if (!advance(State::kStem, State::kSpecializing)) {
    co_return Unavailable("instance " + label_ + " is not a waiting stem (it is " + std::string(stateName(state_)) + ")");
  }
  Json j = {{"deployment", info.deployment}, {"app", info.app}, {"dir", info.dir}, {"entry", info.entry},
            {"env", info.env}, {"runtime", info.runtime}};
  std::string f;
  protocol::appendFrame(f, FrameType::kSpecialize, 0, 0, dumpJson(j));
  auto box = std::make_shared<Mailbox>(co_await asio::this_coro::executor);
  setControl(box);
  send(std::move(f));
  if (after_send) after_send();
  Result<Frame> ready = Unavailable("no READY yet");
  for (;;) {
    ready = co_await box->next(deadline);
    if (!ready.ok() || ready->type == FrameType::kReady) break;
  }
  if (!ready.ok()) {
    kill();
    co_return ready.status().withContext("loading " + info.entry);
  }
  auto r = parseJson(ready->payload, "READY");
  if (!r.ok() || !r->is_object()) {
    kill();
    co_return Internal("instance " + label_ + " sent a malformed READY");
  }
  if (!r->value("ok", false)) {
    kill();
    co_return FailedPrecondition(r->value("error", std::string("the code failed to load")));
  }
  // Its process may have ended since READY (seen on the instance's thread):
  // a dead instance never becomes ready again.
  if (!advance(State::kSpecializing, State::kReady)) {
    co_return Unavailable("instance " + label_ + " ended right after loading " + info.entry);
  }
  co_return r->value("load_ms", 0.0);
}

Result<std::shared_ptr<Call>> Instance::open(asio::any_io_executor caller, std::string_view head,
                                             std::string_view body, bool end, bool upgrade) {
  if (state_ == State::kDead) return Unavailable("instance " + label_ + " is not running");
  uint32_t id = next_stream_.fetch_add(2);
  // The caller on the instance's own thread (one thread runs everything):
  // its frames are pushed and taken there, with no hand-off between.
  bool same_thread = onOwnThread() && caller == strand_;
  auto box = std::make_shared<Mailbox>(caller, same_thread);
  std::string f;
  uint8_t flags = (end ? protocol::kEndStream : 0) | (upgrade ? protocol::kUpgrade : 0);
  protocol::appendHeadFrame(f, FrameType::kRequest, flags, id, head, body);
  inflight_++;
  onStrand([self = shared_from_this(), id, box, f = std::move(f)]() mutable {
    if (self->dead_) {
      self->inflight_--;
      box->close(Unavailable("instance " + self->label_ + " " + self->dead_why_));
      return;
    }
    self->streams_[id] = box;
    self->queueOut(f);
  });
  return std::make_shared<Call>(shared_from_this(), id, box);
}

bool Instance::advance(State from, State to) { return state_.compare_exchange_strong(from, to); }

void Instance::stop() {
  State s = state_.load();
  while (s != State::kDead && !state_.compare_exchange_weak(s, State::kStopping)) {
  }
  if (s == State::kDead) return;
  asio::post(strand_, [self = shared_from_this()] {
    error_code ignored;
    self->socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    // The runtime exits when its socket ends; make sure it does.
    auto t = std::make_shared<asio::steady_timer>(self->strand_, std::chrono::seconds(2));
    t->async_wait([self, t](error_code ec) {
      if (!ec && !self->dead_) self->kill();
    });
  });
}

void Instance::kill() {
  // Out of service at once: the pool must not pick it while it dies.
  State s = state_.load();
  while (s != State::kDead && !state_.compare_exchange_weak(s, State::kStopping)) {
  }
  if (pid_ > 0) ::kill(pid_, SIGKILL);
}

}  // namespace nubo::runtime
