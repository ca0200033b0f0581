#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pythmata::app {

/// A small pool of threads that start on demand up to `max_threads` and run posted tasks in
/// order of posting. post() never blocks. stop(drain) refuses new tasks, runs the queued ones
/// (drain = true) or drops them, lets running tasks finish and joins. Thread-safe.
class TaskPool {
  public:
    explicit TaskPool(std::size_t max_threads) : max_threads_(max_threads == 0 ? 1 : max_threads) {}
    ~TaskPool() { stop(false); }
    TaskPool(const TaskPool&) = delete;
    TaskPool& operator=(const TaskPool&) = delete;

    /// False when the pool has stopped (the task is dropped).
    bool post(std::function<void()> task) {
        std::lock_guard lock(mutex_);
        if (stopped_) {
            return false;
        }
        tasks_.push_back(std::move(task));
        if (idle_ == 0 && threads_.size() < max_threads_) {
            threads_.emplace_back([this] { loop(); });
        } else {
            cv_.notify_one();
        }
        return true;
    }

    void stop(bool drain) {
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(mutex_);
            stopped_ = true;
            if (!drain) {
                tasks_.clear();
            }
            threads.swap(threads_);
        }
        cv_.notify_all();
        for (auto& t : threads) {
            if (t.joinable()) {
                t.join();
            }
        }
    }

  private:
    void loop() {
        std::unique_lock lock(mutex_);
        for (;;) {
            ++idle_;
            cv_.wait(lock, [this] { return stopped_ || !tasks_.empty(); });
            --idle_;
            if (tasks_.empty()) {
                return;  // stopped, nothing left to run
            }
            auto task = std::move(tasks_.front());
            tasks_.pop_front();
            lock.unlock();
            task();
            lock.lock();
        }
    }

    const std::size_t max_threads_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> tasks_;
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;
    bool stopped_ = false;
};

}  // namespace pythmata::app
