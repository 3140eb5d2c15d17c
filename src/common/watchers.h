// Watchers<F>: the callbacks a component calls when something changed
// (the store's changes, a log's writes). add() and remove() from any
// thread; notify() calls each callback added before it without a lock held
// (a callback may add or remove watchers, and a removed one may still be
// running its last call).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace nubo {

template <class F>
class Watchers {
 public:
  // An id for remove().
  uint64_t add(F f) {
    std::lock_guard lock(mu_);
    uint64_t id = next_++;
    list_[id] = std::make_shared<F>(std::move(f));
    return id;
  }
  void remove(uint64_t id) {
    std::lock_guard lock(mu_);
    list_.erase(id);
  }
  bool empty() const {
    std::lock_guard lock(mu_);
    return list_.empty();
  }
  template <class... Args>
  void notify(const Args&... args) const {
    std::vector<std::shared_ptr<F>> now;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, f] : list_) now.push_back(f);
    }
    for (const auto& f : now) (*f)(args...);
  }

 private:
  mutable std::mutex mu_;
  uint64_t next_ = 1;                          // guarded by mu_
  std::map<uint64_t, std::shared_ptr<F>> list_;  // guarded by mu_
};

}  // namespace nubo
