#pragma once
// Internal to issuer/: `WARDEN_ASSIGN(x, expr)` declares x as the value of a Result, or returns
// its error.

#define WARDEN_ASSIGN(var, expr)                             \
  auto var##_result_ = (expr);                               \
  if (!var##_result_) {                                      \
    return ::warden::fail(std::move(var##_result_).error()); \
  }                                                          \
  auto var = std::move(*var##_result_)
