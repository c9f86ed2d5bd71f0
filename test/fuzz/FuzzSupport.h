//===- FuzzSupport.h - what every fuzz target needs -------------*- C++ -*-===//
//
// Part of weipipe's fuzz targets (test/fuzz/README.md).
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_TEST_FUZZ_FUZZSUPPORT_H
#define WEIPIPE_TEST_FUZZ_FUZZSUPPORT_H

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

namespace weipipe::fuzz {

/// The target's name in its messages ("fuzz-data"), set by makeTempDir.
inline std::string &targetName() {
  static std::string name = "fuzz";
  return name;
}

/// A property every input must keep; its violation is a finding (abort).
inline void check(bool ok, const char *what) {
  if (!ok) {
    std::fprintf(stderr, "%s: property violated: %s\n", targetName().c_str(),
                 what);
    std::abort();
  }
}

/// Makes the target's private directory under $TMPDIR and removes it, with
/// what is in it, at exit. scripts/fuzz.sh points $TMPDIR into its build
/// directory and empties it, since a crashing process never removes its own.
inline std::string makeTempDir(const char *target) {
  targetName() = target;
  static std::string dir;
  const char *tmp = std::getenv("TMPDIR");
  dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/weipipe-" + target +
        "-XXXXXX";
  if (!::mkdtemp(dir.data())) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  });
  return dir;
}

} // namespace weipipe::fuzz

#endif // WEIPIPE_TEST_FUZZ_FUZZSUPPORT_H
