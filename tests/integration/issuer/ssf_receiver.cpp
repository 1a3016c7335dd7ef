#include "tests/integration/issuer/ssf_receiver.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace warden::test {
namespace {
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

template <class Stream>
asio::awaitable<void> converse(Stream& stream, std::function<ReceiverReply(ReceivedPost)> on) {
  boost::beast::flat_buffer buffer;
  bhttp::request_parser<bhttp::string_body> parser;
  parser.body_limit(1 << 20);
  auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  if (ec) co_return;
  auto& req = parser.get();
  ReceiverReply reply =
      on(ReceivedPost{std::string(req.target()), std::string(req[bhttp::field::content_type]),
                      std::string(req[bhttp::field::accept]),
                      std::string(req[bhttp::field::authorization]), req.body()});
  switch (reply.mode) {
    case ReceiverReply::Mode::kHang: {
      asio::steady_timer forever(co_await asio::this_coro::executor, std::chrono::hours(1));
      co_await forever.async_wait(kNoThrow);
      co_return;
    }
    case ReceiverReply::Mode::kCloseEarly:
      co_return;
    case ReceiverReply::Mode::kGarbage: {
      static constexpr std::string_view kJunk = "SMTP ready\r\n\r\n";
      co_await asio::async_write(stream, asio::buffer(kJunk.data(), kJunk.size()), kNoThrow);
      co_return;
    }
    case ReceiverReply::Mode::kRespond:
      break;
  }
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(reply.status), 11};
  if (!reply.content_type.empty()) res.set(bhttp::field::content_type, reply.content_type);
  res.body() = std::move(reply.body);
  res.keep_alive(false);
  res.prepare_payload();
  co_await bhttp::async_write(stream, res, kNoThrow);
}

}  // namespace

Receiver::Receiver(Behaviour behaviour, std::optional<std::filesystem::path> pki,
                   const std::string& address)
    : address_(address), behaviour_(std::move(behaviour)) {
  if (pki) {
    tls_.emplace(asio::ssl::context::tls_server);
    tls_->use_certificate_chain_file((*pki / "server.crt").string());
    tls_->use_private_key_file((*pki / "server.key").string(), asio::ssl::context::pem);
  }
  const auto addr = asio::ip::make_address(address);
  acceptor_.open(addr.is_v6() ? tcp::v6() : tcp::v4());
  acceptor_.bind({addr, 0});
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  accept_loop();
  thread_ = std::thread([this] { io_.run(); });
}

Receiver::~Receiver() {
  io_.stop();
  thread_.join();
}

std::string Receiver::url(const std::string& path, const std::string& host) const {
  std::string h = host.empty() ? address_ : host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return std::string(tls_ ? "https" : "http") + "://" + h + ":" + std::to_string(port_) + path;
}

std::vector<ReceivedPost> Receiver::received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

bool Receiver::wait_for(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return received_.size() >= n; });
}

void Receiver::set_behaviour(Behaviour behaviour) {
  std::lock_guard lock(mutex_);
  behaviour_ = std::move(behaviour);
}

ReceiverReply Receiver::on_request(ReceivedPost post) {
  std::lock_guard lock(mutex_);
  ReceiverReply reply = behaviour_(post);
  received_.push_back(std::move(post));
  cv_.notify_all();
  return reply;
}

void Receiver::accept_loop() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) return;
    auto on = [this](ReceivedPost p) { return on_request(std::move(p)); };
    if (tls_) {
      asio::co_spawn(
          io_,
          [s = asio::ssl::stream<tcp::socket>(std::move(socket), *tls_),
           on]() mutable -> asio::awaitable<void> {
            auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::server, kNoThrow);
            if (!hec) co_await converse(s, on);
          },
          asio::detached);
    } else {
      asio::co_spawn(
          io_,
          [s = std::move(socket), on]() mutable -> asio::awaitable<void> {
            co_await converse(s, on);
          },
          asio::detached);
    }
    accept_loop();
  });
}

void make_pki(const std::filesystem::path& dir, const std::vector<std::string>& names) {
  std::vector<std::string> argv{std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki",
                                dir.string()};
  argv.insert(argv.end(), names.begin(), names.end());
  const auto out = run_command(argv);
  ASSERT_EQ(out.exit_code, 0) << out.out;
}

}  // namespace warden::test
