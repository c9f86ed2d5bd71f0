//===- OutputFile.cpp - all-or-nothing output files -----------------------===//
//
// Part of weipipe's runtime. See OutputFile.h.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/OutputFile.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace weipipe::rt;

bool OutputFile::failWith(std::string *error, const std::string &what,
                          int err) {
  *error = "cannot write " + path_ + ": " + what +
           (err ? std::string(": ") + std::strerror(err) : std::string());
  discard();
  return false;
}

namespace {
/// `path` with its symlinks followed as far as they lead: the file a write
/// through it creates when the last one dangles. `path` itself when it is
/// not a symlink (or the chain loops).
std::string followLinks(std::string path) {
  for (int hops = 0; hops < 40; ++hops) {
    struct stat lst;
    if (::lstat(path.c_str(), &lst) != 0 || !S_ISLNK(lst.st_mode))
      return path;
    char buf[PATH_MAX];
    const ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf) - 1);
    if (n <= 0)
      return path;
    std::string to(buf, size_t(n));
    const size_t slash = path.rfind('/');
    if (to[0] != '/' && slash != std::string::npos)
      to = path.substr(0, slash + 1) + to; // relative to the link's directory
    path = to;
  }
  return path;
}
} // namespace

std::string weipipe::rt::fileIdentity(const std::string &spelled) {
  struct stat st;
  if (::stat(spelled.c_str(), &st) == 0)
    return std::to_string(uint64_t(st.st_dev)) + ":" +
           std::to_string(uint64_t(st.st_ino));
  const std::string path = followLinks(spelled);
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

void weipipe::rt::reserveStandardDescriptors() {
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
  // Write through a symlink, dangling or not: replace (or create) its
  // target, keep the link.
  target_ = followLinks(path);
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
  // On disk before the rename: a crash then leaves the old file or the new
  // one, never a renamed empty one. (EINVAL, EROFS: nothing to sync.)
  if (!direct_ && ::fsync(::fileno(f)) != 0 && errno != EINVAL &&
      errno != EROFS) {
    const int err = errno;
    std::fclose(f);
    ::unlink(tmp_.c_str());
    tmp_.clear();
    *error = "cannot write " + path_ + ": sync failed: " + std::strerror(err);
    return false;
  }
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

bool weipipe::rt::writeFileAtomically(const std::string &path,
                                      std::string_view bytes,
                                      std::string *error) {
  OutputFile out;
  if (!out.open(path, error))
    return false;
  out.write(bytes);
  return out.commit(error);
}
