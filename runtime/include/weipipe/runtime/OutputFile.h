//===- OutputFile.h - all-or-nothing output files ---------------*- C++ -*-===//
//
// Part of weipipe's runtime. Every file the tools write (weipipe-opt's
// artifact and IR, weipipe-run's log, weights and logits) is written under a
// temporary name next to its target and renamed over it only when
// everything succeeded, so a failed run leaves no half-written file and
// keeps what was there (the reference trainer's rule,
// python/weipipe/reference/outputs.py).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_OUTPUTFILE_H
#define WEIPIPE_RUNTIME_OUTPUTFILE_H

#include <cstdio>
#include <string>
#include <string_view>

namespace weipipe::rt {

/// Which file `path` is, for comparing paths by identity rather than by
/// spelling ("out/a" and "out/./a", a symlink and its target, a hard link):
/// "dev:inode" when it exists, otherwise the canonical directory and the
/// name (of a dangling symlink's target). Empty when even the directory
/// cannot be resolved.
std::string fileIdentity(const std::string &path);

/// Makes descriptors 0, 1 and 2 valid (/dev/null where closed), so that no
/// file opened later takes the place of standard error.
void reserveStandardDescriptors();

/// One output file: open() creates PATH.tmp.<pid>, commit() syncs it and
/// renames it over PATH, and an uncommitted file is removed by discard() or
/// the destructor. A symlink is written through, dangling or not (the
/// temporary goes next to its target, which the rename replaces); a target
/// that exists and is not a regular file (a character device such as
/// /dev/null, a FIFO) is written directly, never replaced.
class OutputFile {
public:
  OutputFile() = default;
  OutputFile(const OutputFile &) = delete;
  OutputFile &operator=(const OutputFile &) = delete;
  ~OutputFile() { discard(); }

  /// Fails (with "cannot write PATH: ...") when PATH is a directory or its
  /// directory is not writable: call it before long work.
  bool open(const std::string &path, std::string *error);
  bool isOpen() const { return f_ != nullptr; }
  const std::string &path() const { return path_; }
  /// The temporary being written ("" when not open).
  const std::string &tempPath() const { return tmp_; }
  /// Buffered writes; the first failure is reported by flush() / commit().
  void write(const void *data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  /// Pushes buffered bytes to the temporary (e.g. after each log line).
  bool flush(std::string *error);
  /// Closes and renames over the target; on failure removes the temporary.
  bool commit(std::string *error);
  /// Closes and removes the temporary (no-op when not open).
  void discard();

private:
  bool failWith(std::string *error, const std::string &what, int err);
  std::FILE *f_ = nullptr;
  std::string path_, tmp_;
  std::string target_;  ///< what commit() renames over (the resolved path)
  bool direct_ = false; ///< writing a special file in place
  int writeErrno_ = 0;
};

/// Writes `bytes` to `path` through an OutputFile.
bool writeFileAtomically(const std::string &path, std::string_view bytes,
                         std::string *error);

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_OUTPUTFILE_H
