//===- Output.cpp - all-or-nothing output files ---------------------------===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Output.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace weipipe::rt::train;

bool OutputFile::failWith(std::string *error, const std::string &what,
                          int err) {
  *error = "cannot write " + path_ + ": " + what +
           (err ? std::string(": ") + std::strerror(err) : std::string());
  discard();
  return false;
}

std::string weipipe::rt::train::fileIdentity(const std::string &path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0)
    return std::to_string(uint64_t(st.st_dev)) + ":" +
           std::to_string(uint64_t(st.st_ino));
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const std::string base =
      slash == std::string::npos ? path : path.substr(slash + 1);
  char *real = ::realpath(dir.c_str(), nullptr);
  if (!real)
    return "";
  std::string id = std::string(real) + "/" + base;
  std::free(real);
  return id;
}

void weipipe::rt::train::reserveStandardDescriptors() {
  for (int fd = 0; fd <= 2; ++fd)
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      // open() returns the lowest free descriptor: this one.
      const int got = ::open("/dev/null", O_RDWR);
      if (got >= 0 && got != fd)
        ::close(got);
    }
}

bool OutputFile::open(const std::string &path, std::string *error) {
  discard();
  path_ = path;
  target_ = path;
  direct_ = false;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    *error = "cannot write " + path + ": it is a directory";
    return false;
  }
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A device or a FIFO: write it in place; renaming a regular file over
    // it would replace the device for everybody.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || !(f_ = ::fdopen(fd, "wb"))) {
      const int err = errno;
      if (fd >= 0)
        ::close(fd);
      *error = "cannot write " + path + ": " + std::strerror(err);
      return false;
    }
    direct_ = true;
    writeErrno_ = 0;
    return true;
  }
  struct stat lst;
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    // Write through the link: replace its target, keep the link.
    if (char *real = ::realpath(path.c_str(), nullptr)) {
      target_ = real;
      std::free(real);
    }
  }
  tmp_ = target_ + ".tmp." + std::to_string(::getpid());
  // 0666 through the umask, as a plain create would give the target.
  int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int err = errno;
    tmp_.clear();
    *error = "cannot write " + path + ": " + std::strerror(err);
    return false;
  }
  f_ = ::fdopen(fd, "wb");
  if (!f_) {
    const int err = errno;
    ::close(fd);
    return failWith(error, "fdopen", err);
  }
  writeErrno_ = 0;
  return true;
}

void OutputFile::write(const void *data, size_t n) {
  if (!f_ || writeErrno_ || n == 0)
    return;
  if (std::fwrite(data, 1, n, f_) != n)
    writeErrno_ = errno ? errno : EIO;
}

bool OutputFile::flush(std::string *error) {
  if (!f_)
    return true;
  if (!writeErrno_ && std::fflush(f_) != 0)
    writeErrno_ = errno ? errno : EIO;
  if (writeErrno_)
    return failWith(error, "write failed", writeErrno_);
  return true;
}

bool OutputFile::commit(std::string *error) {
  if (!f_) {
    *error = "cannot write " + path_ + ": not open";
    return false;
  }
  if (!flush(error))
    return false;
  std::FILE *f = f_;
  f_ = nullptr;
  if (std::fclose(f) != 0) {
    const int err = errno;
    if (!tmp_.empty())
      ::unlink(tmp_.c_str());
    tmp_.clear();
    *error = "cannot write " + path_ + ": close failed: " + std::strerror(err);
    return false;
  }
  if (direct_)
    return true;
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    tmp_.clear();
    *error = "cannot write " + path_ + ": rename failed: " + std::strerror(err);
    return false;
  }
  tmp_.clear();
  return true;
}

void OutputFile::discard() {
  if (f_) {
    std::fclose(f_);
    f_ = nullptr;
  }
  if (!tmp_.empty()) {
    ::unlink(tmp_.c_str());
    tmp_.clear();
  }
}

std::string
weipipe::rt::train::npyHeaderF32(const std::vector<int64_t> &shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i)
    dict += std::to_string(shape[i]) + (shape.size() == 1 ? "," : "") +
            (i + 1 < shape.size() ? ", " : "");
  dict += "), }";
  // magic (6) + version (2) + length (2) + dict + padding + '\n'.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string h = "\x93NUMPY";
  h += char(1);
  h += char(0);
  h += char(dict.size() & 0xFF);
  h += char((dict.size() >> 8) & 0xFF);
  return h + dict;
}

bool weipipe::rt::train::writeNpyF32(const std::string &path,
                                     const std::vector<int64_t> &shape,
                                     const float *data, std::string *error) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  OutputFile out;
  if (!out.open(path, error))
    return false;
  out.write(npyHeaderF32(shape));
  out.write(data, size_t(n) * sizeof(float)); // the host is little-endian
  return out.commit(error);
}
