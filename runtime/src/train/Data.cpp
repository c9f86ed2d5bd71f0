//===- Data.cpp - token files and the order windows are consumed ----------===//
//
// Part of weipipe's runtime. Every check and message follows
// python/weipipe/reference/data.py, so that both trainers reject the same
// files with the same words.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Data.h"
#include "weipipe/runtime/FileKind.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace weipipe::rt::train;

std::optional<DataFormat>
weipipe::rt::train::parseDataFormat(const std::string &s) {
  if (s == "auto")
    return DataFormat::Auto;
  if (s == "bin")
    return DataFormat::Bin;
  if (s == "text")
    return DataFormat::Text;
  return std::nullopt;
}

std::optional<TokenDType>
weipipe::rt::train::parseTokenDType(const std::string &s) {
  if (s == "uint16")
    return TokenDType::U16;
  if (s == "uint32")
    return TokenDType::U32;
  return std::nullopt;
}

std::optional<DataOrder>
weipipe::rt::train::parseDataOrder(const std::string &s) {
  if (s == "sequential")
    return DataOrder::Sequential;
  if (s == "shuffle")
    return DataOrder::Shuffle;
  return std::nullopt;
}

const char *weipipe::rt::train::dataOrderName(DataOrder o) {
  return o == DataOrder::Shuffle ? "shuffle" : "sequential";
}

namespace {
const char *dtypeName(TokenDType t) {
  return t == TokenDType::U16 ? "uint16" : "uint32";
}

bool endsWithTxt(const std::string &path) {
  if (path.size() < 4)
    return false;
  std::string ext = path.substr(path.size() - 4);
  for (char &c : ext)
    c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".txt";
}

int32_t loadI32(const uint8_t *p) {
  return int32_t(uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                 uint32_t(p[3]) << 24);
}

/// Index of the first token >= vocab, or -1.
template <typename T>
int64_t firstOutOfRange(const uint8_t *base, uint64_t count, int64_t vocab) {
  for (uint64_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, base + i * sizeof(T), sizeof(T)); // the host is LE
    if (int64_t(v) >= vocab)
      return int64_t(i);
  }
  return -1;
}
} // namespace

std::unique_ptr<TokenFile> TokenFile::load(const std::string &path,
                                           int64_t vocab,
                                           std::optional<TokenDType> dtype,
                                           DataFormat format,
                                           std::string *error) {
  auto fail = [&](std::string msg) -> std::unique_ptr<TokenFile> {
    *error = std::move(msg);
    return nullptr;
  };
  const std::string df = "data file " + path;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return fail(df + ": no such file");
    return fail(df + ": " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode))
    return fail(df + " is a directory");
  // The tokens are memory-mapped, which needs a regular file of known size.
  auto copyHint = [&] {
    // A device (/dev/zero) may never end: copy a stated number of bytes.
    return S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode)
               ? "; copy it to a regular file first (cat " + path +
                     " > tokens.bin)"
               : "; copy it to a regular file first (head -c BYTES " + path +
                     " > tokens.bin)";
  };
  if (!S_ISREG(st.st_mode))
    return fail(df + " is " + fileKindName(st.st_mode) +
                ", not a regular file that can be memory-mapped" + copyHint());
  const uint64_t size = uint64_t(st.st_size);
  if (size == 0) {
    // /proc and sysfs files say 0 bytes and still have content.
    char probe;
    const int pfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    const bool content = pfd >= 0 && ::read(pfd, &probe, 1) == 1;
    if (pfd >= 0)
      ::close(pfd);
    if (content)
      return fail(df +
                  " reports a size of 0 bytes but has content (a /proc "
                  "or sysfs file?), so it cannot be memory-mapped" +
                  copyHint());
    return fail(df + " is empty");
  }
  if (format == DataFormat::Auto)
    format = endsWithTxt(path) ? DataFormat::Text : DataFormat::Bin;
  if (format == DataFormat::Text) {
    if (dtype)
      return fail("--token-dtype does not apply to text data (one byte = one "
                  "token)");
    if (vocab < 256)
      return fail("text data " + path +
                  " uses the byte tokenizer (ids 0..255), which needs a "
                  "vocabulary of at least 256; the model's vocabulary is " +
                  std::to_string(vocab));
  }

  std::unique_ptr<TokenFile> tf(new TokenFile());
  tf->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(df + ": cannot open: " + std::strerror(errno));
  tf->fd_ = fd;
  void *map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int mapErrno = errno;
  if (map == MAP_FAILED)
    return fail(df + ": cannot map " + std::to_string(size) +
                " bytes: " + std::strerror(mapErrno));
  tf->map_ = map;
  tf->mapBytes_ = size;
  const auto *bytes = static_cast<const uint8_t *>(map);

  if (format == DataFormat::Text) {
    tf->format_ = "text";
    tf->dtype_ = "uint8";
    tf->item_ = 1;
    tf->base_ = bytes;
    tf->count_ = size;
  } else if (size >= 4 && loadI32(bytes) == kLlmcMagic) {
    if (size < kLlmcHeaderBytes)
      return fail(df + " starts with the llm.c magic number " +
                  std::to_string(kLlmcMagic) + " but is only " +
                  std::to_string(size) + " bytes, shorter than the " +
                  std::to_string(kLlmcHeaderBytes) + "-byte llm.c header");
    const int32_t version = loadI32(bytes + 4), ntok = loadI32(bytes + 8);
    if (version != 1 && version != 2)
      return fail(df + ": llm.c header version " + std::to_string(version) +
                  " is not supported (1: uint16 tokens, 2: uint32)");
    const TokenDType dt = version == 1 ? TokenDType::U16 : TokenDType::U32;
    if (dtype && *dtype != dt)
      return fail(df + ": --token-dtype " + dtypeName(*dtype) +
                  " contradicts the llm.c header (version " +
                  std::to_string(version) + ": " + dtypeName(dt) + " tokens)");
    const unsigned item = dt == TokenDType::U16 ? 2 : 4;
    if (ntok < 0)
      return fail(df + ": llm.c header gives a negative token count " +
                  std::to_string(ntok));
    const uint64_t expect = kLlmcHeaderBytes + uint64_t(ntok) * item;
    if (size != expect)
      return fail(df + ": llm.c header says " + std::to_string(ntok) + " " +
                  dtypeName(dt) + " tokens (" + std::to_string(expect) +
                  " bytes with the header) but the file has " +
                  std::to_string(size) + " bytes" +
                  (size < expect ? " (truncated)" : ""));
    if (ntok == 0)
      return fail(df + " holds no tokens (llm.c header token count 0)");
    tf->format_ = "llm.c";
    tf->dtype_ = dtypeName(dt);
    tf->item_ = item;
    tf->base_ = bytes + kLlmcHeaderBytes;
    tf->count_ = uint64_t(ntok);
  } else {
    const TokenDType dt =
        dtype ? *dtype : (vocab <= 65536 ? TokenDType::U16 : TokenDType::U32);
    const unsigned item = dt == TokenDType::U16 ? 2 : 4;
    if (size % item)
      return fail(df + ": size " + std::to_string(size) +
                  " bytes is not a multiple of " + std::to_string(item) + " (" +
                  dtypeName(dt) +
                  " tokens); wrong --token-dtype, or not a token file?");
    tf->format_ = "raw";
    tf->dtype_ = dtypeName(dt);
    tf->item_ = item;
    tf->base_ = bytes;
    tf->count_ = size / item;
  }
  if (tf->count_ == 0)
    return fail(df + " holds no tokens");

  ::madvise(map, size, MADV_SEQUENTIAL); // the vocabulary scan reads it once
  int64_t bad = tf->item_ == 1
                    ? firstOutOfRange<uint8_t>(tf->base_, tf->count_, vocab)
                : tf->item_ == 2
                    ? firstOutOfRange<uint16_t>(tf->base_, tf->count_, vocab)
                    : firstOutOfRange<uint32_t>(tf->base_, tf->count_, vocab);
  ::madvise(map, size, MADV_RANDOM); // windows are read in any order
  if (bad >= 0) {
    const uint64_t offset =
        uint64_t(tf->base_ - bytes) + uint64_t(bad) * tf->item_;
    return fail(df + ": token " + std::to_string(bad) + " (byte offset " +
                std::to_string(offset) + ") has id " +
                std::to_string((*tf)[uint64_t(bad)]) +
                ", not < the model's vocabulary size " + std::to_string(vocab) +
                (std::strcmp(tf->format_, "raw") == 0
                     ? std::string(" (read as raw ") + tf->dtype_ +
                           "; wrong --token-dtype?)"
                     : std::string()));
  }
  return tf;
}

TokenFile::~TokenFile() {
  if (map_)
    ::munmap(map_, mapBytes_);
  if (fd_ >= 0)
    ::close(fd_);
}

std::string TokenFile::shrunk() const {
  struct stat st;
  if (fd_ < 0 || ::fstat(fd_, &st) != 0 || uint64_t(st.st_size) >= mapBytes_)
    return "";
  return "data file " + path_ + " shrank from " + std::to_string(mapBytes_) +
         " to " + std::to_string(uint64_t(st.st_size)) +
         " bytes during the run (truncated or rewritten in place); its "
         "tokens can no longer be read";
}

std::string TokenFile::describe() const {
  return path_ + ": " + std::to_string(count_) + " tokens, " + format_ + " " +
         dtype_;
}

void weipipe::rt::train::shufflePermutation(uint64_t n, SplitMix64 &rng,
                                            std::vector<uint64_t> &perm) {
  perm.resize(n);
  for (uint64_t i = 0; i < n; ++i)
    perm[i] = i;
  for (uint64_t i = n; i-- > 1;) {
    const uint64_t j = rng.next() % (i + 1);
    std::swap(perm[i], perm[j]);
  }
}

std::optional<Windows> Windows::create(const TokenFile &tokens, int64_t seq,
                                       DataOrder order, uint64_t seed,
                                       std::string *error) {
  if (seq < 1 || uint64_t(seq) >= tokens.size()) {
    *error = seq < 1
                 ? "sequence length must be >= 1, got " + std::to_string(seq)
                 : "data file " + tokens.path() + " has " +
                       std::to_string(tokens.size()) +
                       " tokens, fewer than one window of seq+1 = " +
                       std::to_string(uint64_t(seq) + 1);
    return std::nullopt;
  }
  Windows w(tokens, seq, order, seed);
  w.n_ = tokens.size() / uint64_t(seq + 1);
  if (w.n_ == 0) {
    *error =
        "data file " + tokens.path() + " has " + std::to_string(tokens.size()) +
        " tokens, fewer than one window of seq+1 = " + std::to_string(seq + 1);
    return std::nullopt;
  }
  return w;
}

uint64_t Windows::index(uint64_t k) {
  if (order_ == DataOrder::Sequential)
    return k % n_;
  const int64_t epoch = int64_t(k / n_);
  if (epoch < epoch_) { // restart the generator at epoch 0
    rng_ = SplitMix64(seed_);
    epoch_ = -1;
  }
  while (epoch_ < epoch) { // one permutation per epoch, drawn in order
    shufflePermutation(n_, rng_, perm_);
    ++epoch_;
  }
  return perm_[k % n_];
}

void Windows::fill(uint64_t k0, int64_t rows, int64_t *ids, int64_t *targets,
                   uint64_t *windows) {
  const uint64_t L = uint64_t(seq_) + 1;
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t w = index(k0 + uint64_t(r));
    if (windows)
      windows[r] = w;
    const uint64_t t0 = w * L;
    int64_t *x = ids + r * seq_, *y = targets + r * seq_;
    for (int64_t s = 0; s < seq_; ++s) {
      x[s] = (*tokens_)[t0 + uint64_t(s)];
      y[s] = (*tokens_)[t0 + uint64_t(s) + 1];
    }
  }
}

void Windows::fillMicrobatch(int64_t step, int64_t m, int64_t microbatches,
                             int64_t batch, int64_t *ids, int64_t *targets,
                             uint64_t *windows) {
  const uint64_t k0 =
      (uint64_t(step) * uint64_t(microbatches) + uint64_t(m)) * uint64_t(batch);
  fill(k0, batch, ids, targets, windows);
}
