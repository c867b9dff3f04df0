// The Asio vocabulary every coroutine in pgmux uses: awaitable aliases, the result-returning
// completion token, and the single timeout helper (Boost 1.81 has no cancel_after).
#pragma once

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <variant>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace pgmux::pooler {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace boost::asio::experimental::awaitable_operators;
using Millis = std::chrono::milliseconds;

// Every coroutine, socket and timer of pgmux lives on one io_context (a worker's or the main
// thread's), so they all use that context's own executor type rather than the polymorphic
// any_io_executor: starting an operation then copies one pointer instead of re-wrapping a
// type-erased executor for Asio's work tracking, on every read, write and wait.
using Executor = asio::io_context::executor_type;
template <class T = void>
using awaitable = boost::asio::awaitable<T, Executor>;
inline constexpr asio::use_awaitable_t<Executor> use_awaitable;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;

// A TCP socket bound to one worker's io_context. Its executor is one pointer, where
// tcp::socket's polymorphic any_io_executor takes 32 bytes in the socket and again in every
// operation queued on it (a parked client's wait among them).
using Socket = asio::basic_stream_socket<tcp, Executor>;

// SO_REUSEPORT, which Asio has no name for: listeners of several processes on one address.
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// Completion token that returns (error_code, value…) instead of throwing. Deferred: co_await
// starts the operation from the awaiting coroutine's own frame, where use_awaitable wraps
// every operation in a coroutine frame of its own (one allocation and resumption more per
// read, write and wait).
inline constexpr auto as_result = asio::as_tuple(asio::deferred);
// The same as an awaitable object, where one must be combined (operator||) or passed on.
inline constexpr auto as_result_awaitable = asio::as_tuple(use_awaitable);

// What is left of `buffers` after the first `skip` bytes (a write the socket took only part of:
// rare, so the copy of the sequence may allocate).
template <class ConstBuffers>
std::vector<asio::const_buffer> buffers_after(const ConstBuffers& buffers, std::size_t skip) {
  std::vector<asio::const_buffer> rest;
  for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
       ++it) {
    asio::const_buffer b(*it);
    const std::size_t dropped = std::min(skip, b.size());
    skip -= dropped;
    b += dropped;
    if (b.size() > 0) rest.push_back(b);
  }
  return rest;
}

// Thrown when with_timeout's deadline passes first.
class TimeoutError : public std::runtime_error {
 public:
  TimeoutError() : std::runtime_error("operation timed out") {}
};

namespace detail {
// An awaitable's outcome as a value. Asio's `||` waits for the first *success*, so an
// operation that throws would otherwise lose to the timer and its error would be masked.
template <class T>
struct Outcome {
  std::exception_ptr error;
  std::optional<T> value;
};
template <>
struct Outcome<void> {
  std::exception_ptr error;
};

template <class T>
awaitable<Outcome<T>> capture(awaitable<T> op) {
  Outcome<T> out;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(op);
    } else {
      out.value.emplace(co_await std::move(op));
    }
  } catch (...) {
    out.error = std::current_exception();
  }
  co_return out;
}
}  // namespace detail

// Runs `op`, cancelling it and throwing TimeoutError if `limit` passes first. Exceptions from
// `op` propagate unchanged.
template <class T>
awaitable<T> with_timeout(awaitable<T> op, Millis limit) {
  Timer timer(co_await asio::this_coro::executor, limit);
  auto winner = co_await (detail::capture(std::move(op)) || timer.async_wait(as_result_awaitable));
  if (winner.index() == 1) throw TimeoutError();
  auto& outcome = std::get<0>(winner);
  if (outcome.error) std::rethrow_exception(outcome.error);
  if constexpr (!std::is_void_v<T>) co_return std::move(*outcome.value);
}

// Thrown when while_holds's condition stopped holding first.
class ConditionEnded : public std::runtime_error {
 public:
  ConditionEnded() : std::runtime_error("condition no longer holds") {}
};

namespace detail {
// Completes when `holds()` is false, looked at every `period`.
template <class Pred>
awaitable<void> until_false(Millis period, Pred holds) {
  Timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(period);
    auto [ec] = co_await timer.async_wait(as_result_awaitable);
    if (ec || !holds()) co_return;
  }
}
}  // namespace detail

// Runs `op`, cancelling it and throwing ConditionEnded once `holds()` is false (looked at every
// `period`): for waits worth finishing only while something stays true.
template <class T, class Pred>
awaitable<T> while_holds(awaitable<T> op, Millis period, Pred holds) {
  auto winner =
      co_await (detail::capture(std::move(op)) || detail::until_false(period, std::move(holds)));
  if (winner.index() == 1) throw ConditionEnded();
  auto& outcome = std::get<0>(winner);
  if (outcome.error) std::rethrow_exception(outcome.error);
  if constexpr (!std::is_void_v<T>) co_return std::move(*outcome.value);
}

}  // namespace pgmux::pooler
