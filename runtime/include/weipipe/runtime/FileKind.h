//===- FileKind.h - what a path that is not a regular file is ---*- C++ -*-===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//
//
// The runtime reads parameters at offsets and memory-maps token files: both
// need regular files. A user who passes a pipe, a device or a directory is
// told which it is, in the same words everywhere.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_FILEKIND_H
#define WEIPIPE_RUNTIME_FILEKIND_H

#include <sys/stat.h>

namespace weipipe::rt {

/// "a directory", "a pipe (FIFO)", ... for `st_mode`; "a regular file" for
/// one, and "not a regular file" for kinds without a name here.
inline const char *fileKindName(mode_t mode) {
  return S_ISREG(mode)    ? "a regular file"
         : S_ISDIR(mode)  ? "a directory"
         : S_ISFIFO(mode) ? "a pipe (FIFO)"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
         : S_ISSOCK(mode) ? "a socket"
                          : "not a regular file";
}

} // namespace weipipe::rt

#endif // WEIPIPE_RUNTIME_FILEKIND_H
