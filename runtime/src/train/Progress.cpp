//===- Progress.cpp - the trainer's progress display ----------------------===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Progress.h"

#include <algorithm>
#include <cmath>
#include <unistd.h>

using namespace weipipe::rt::train;

namespace {
std::string fmt(const char *f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, x);
  return buf;
}

/// 3 significant digits for 1 <= x < 1024.
std::string sig3(double x) {
  return x >= 100 ? fmt("%.0f", x) : x >= 10 ? fmt("%.1f", x) : fmt("%.2f", x);
}

std::string formatSeconds(double s) {
  if (s < 60)
    return fmt(s < 10 ? "%.1fs" : "%.0fs", s);
  const int64_t t = int64_t(s + 0.5);
  char buf[64];
  if (t < 3600)
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", (long long)(t / 60),
                  (long long)(t % 60));
  else
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", (long long)(t / 3600),
                  (long long)(t / 60 % 60));
  return buf;
}
} // namespace

std::string weipipe::rt::train::formatBytes(uint64_t bytes) {
  if (bytes < 1024)
    return std::to_string(bytes) + " B";
  static const char *units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double x = double(bytes) / 1024;
  int u = 0;
  // From 1023.5 on, "%.0f" would print "1024": show the next unit instead.
  while (u < 5 && x >= 1023.5) {
    x /= 1024;
    ++u;
  }
  return sig3(x) + " " + units[u];
}

std::string weipipe::rt::train::formatCount(double x) {
  if (!(x >= 0) || std::isinf(x))
    return "-";
  if (x < 1000)
    return fmt("%.0f", x);
  static const char *units[] = {"k", "M", "G", "T"};
  int u = -1;
  while (u < 3 && x >= 1000) {
    x /= 1000;
    ++u;
  }
  return sig3(x) + units[u];
}

uint64_t weipipe::rt::train::processRssBytes() {
  std::FILE *f = std::fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2)
    return 0;
  const long page = ::sysconf(_SC_PAGESIZE);
  return resident * uint64_t(page > 0 ? page : 4096);
}

std::string weipipe::rt::train::progressLine(const ProgressState &s,
                                             int barWidth) {
  std::string line;
  if (barWidth > 0) {
    const double frac =
        s.total > 0 ? std::min(1.0, double(s.done) / double(s.total)) : 1.0;
    const int full = int(frac * barWidth);
    line += "[";
    for (int i = 0; i < barWidth; ++i)
      line += i < full ? '=' : (i == full ? '>' : ' ');
    line += "] ";
  }
  line += "step " + std::to_string(s.done) + "/" + std::to_string(s.total) +
          " loss " + fmt("%.6f", s.loss) + " | " + formatCount(s.tokensPerSec) +
          " tok/s | mem " + formatBytes(s.memBytes) + " (rss " +
          formatBytes(s.rssBytes) + ") | " + formatSeconds(s.elapsedS);
  if (s.done > 0 && s.done < s.total)
    line += ", eta " + formatSeconds(s.elapsedS / double(s.done) *
                                     double(s.total - s.done));
  return line;
}

void Progress::update(const ProgressState &s) {
  if (!enabled_)
    return;
  const bool last = s.done >= s.total;
  if (tty_) {
    // Redraw at most ~10 times a second; always draw the last step.
    if (!last && lastDrawS_ >= 0 && s.elapsedS - lastDrawS_ < 0.1)
      return;
    lastDrawS_ = s.elapsedS;
    std::fprintf(out_, "\r%s\x1b[K", progressLine(s, 24).c_str());
    std::fflush(out_);
    drawn_ = true;
    return;
  }
  const int64_t every = std::max<int64_t>(1, s.total / 10);
  if (last || s.done % every == 0) {
    std::fprintf(out_, "%s\n", progressLine(s, 0).c_str());
    std::fflush(out_);
  }
}

void Progress::finish() {
  if (enabled_ && tty_ && drawn_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  drawn_ = false;
}
