//===- Status.h - success or an error message -------------------*- C++ -*-===//
//
// Part of weipipe's runtime. What kernels, the executor, the trainer and the
// transports return when an input can be wrong at run time.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_STATUS_H
#define WEIPIPE_RUNTIME_STATUS_H

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace weipipe::rt {

/// Success, or an error message. Kernels whose inputs can be invalid at run
/// time (indices) check everything first and write nothing on error.
class [[nodiscard]] Status {
public:
  Status() = default;
  static Status error(std::string message) {
    return Status(std::move(message));
  }
  bool ok() const { return message_.empty(); }
  const std::string &message() const { return message_; }

private:
  explicit Status(std::string m) : message_(std::move(m)) {
    if (message_.empty())
      message_ = "error";
  }
  std::string message_;
};

/// Runs `allocate()`; an allocation that fails in it (std::bad_alloc, or a
/// length_error from a container asked for more than it can hold) becomes an
/// error naming `what` and its `bytes`, never an uncaught exception.
template <class F>
Status allocating(const std::string &what, uint64_t bytes, F &&allocate) {
  try {
    allocate();
    return Status();
  } catch (const std::bad_alloc &) {
  } catch (const std::length_error &) {
  }
  return Status::error("cannot allocate " + what + " (" +
                       std::to_string(bytes) + " bytes): out of memory");
}

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_STATUS_H
