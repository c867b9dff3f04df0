// Server login credentials: password, md5 hash, SCRAM keys derived once or passed through.
#include "pooler/pool/server_credentials.hpp"

namespace pgmux::pooler {

namespace {

// Derives SCRAM keys on `pool` and completes on the caller's executor. A plain initiating
// function rather than a coroutine spawned on the pool: the caller resumes on its own worker
// for certain, and no coroutine takes non-trivial arguments inside a co_await (GCC 12).
template <class Token>
auto async_derive_keys(asio::thread_pool& pool, std::string password, std::string salt,
                       int iterations, Token&& token) {
  return asio::async_initiate<Token, void(std::exception_ptr, protocol::ScramKeys)>(
      [&pool](auto handler, std::string password, std::string salt, int iterations) {
        auto work = asio::make_work_guard(asio::get_associated_executor(handler));
        asio::post(pool, [handler = std::move(handler), work = std::move(work),
                          password = std::move(password), salt = std::move(salt),
                          iterations]() mutable {
          std::exception_ptr error;
          protocol::ScramKeys keys;
          try {
            keys = protocol::derive_scram_keys(password, salt, iterations);
          } catch (...) {
            error = std::current_exception();
          }
          auto home = work.get_executor();
          asio::post(home, [handler = std::move(handler), error, keys = std::move(keys)]() mutable {
            std::move(handler)(error, std::move(keys));
          });
        });
      },
      token, std::move(password), std::move(salt), iterations);
}

}  // namespace

void ServerCredentials::update(const std::string& password, const std::string& md5_hash) {
  std::lock_guard lock(mutex_);
  if (password != password_) keys_.reset();
  password_ = password;
  md5_hash_ = md5_hash;
}

std::string ServerCredentials::password() const {
  std::lock_guard lock(mutex_);
  return password_;
}

std::string ServerCredentials::md5_hash() const {
  std::lock_guard lock(mutex_);
  return md5_hash_;
}

void ServerCredentials::remember(protocol::ScramKeys keys) {
  std::lock_guard lock(mutex_);
  keys_ = std::move(keys);
}

bool ServerCredentials::can_answer_scram() const {
  std::lock_guard lock(mutex_);
  return !password_.empty() || keys_.has_value();
}

awaitable<std::optional<protocol::ScramKeys>> ServerCredentials::keys_for(const std::string& salt,
                                                                          int iterations) {
  std::string password;
  std::optional<protocol::ScramKeys> known;
  {
    std::lock_guard lock(mutex_);
    if (keys_ && keys_->salt == salt && keys_->iterations == iterations) known = keys_;
    password = password_;
  }
  if (known || password.empty()) co_return known;
  // On the key-derivation thread; the worker serves its other clients meanwhile.
  protocol::ScramKeys keys =
      co_await async_derive_keys(kdf_, std::move(password), salt, iterations, use_awaitable);
  {
    std::lock_guard lock(mutex_);
    keys_ = keys;
  }
  co_return keys;
}

}  // namespace pgmux::pooler
