// The Asio vocabulary every coroutine in pgmux uses: awaitable aliases, the result-returning
// completion token, and the single timeout helper (Boost 1.81 has no cancel_after).
#pragma once

#include <chrono>
#include <stdexcept>
#include <variant>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace pgmux::pooler {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::asio::awaitable;
using boost::asio::use_awaitable;
using namespace boost::asio::experimental::awaitable_operators;
using Millis = std::chrono::milliseconds;

// Completion token that returns (error_code, value…) instead of throwing.
inline constexpr auto as_result = asio::as_tuple(asio::use_awaitable);

// Thrown when with_timeout's deadline passes first.
class TimeoutError : public std::runtime_error {
 public:
  TimeoutError() : std::runtime_error("operation timed out") {}
};

// Runs `op`, cancelling it and throwing TimeoutError if `limit` passes first.
template <class T>
awaitable<T> with_timeout(awaitable<T> op, Millis limit) {
  asio::steady_timer timer(co_await asio::this_coro::executor, limit);
  auto winner = co_await (std::move(op) || timer.async_wait(as_result));
  if (winner.index() == 1) throw TimeoutError();
  if constexpr (!std::is_void_v<T>) co_return std::get<0>(std::move(winner));
}

}  // namespace pgmux::pooler
