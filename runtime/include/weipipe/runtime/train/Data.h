//===- Data.h - token files and the order windows are consumed --*- C++ -*-===//
//
// Part of weipipe's runtime (the trainer side of weipipe-run). The data
// contract is the reference trainer's (python/weipipe/reference/README.md,
// "Data"), rule for rule and message for message, because weipipe-run's
// results are compared with the reference's to 1e-5:
//
//  * raw token file: little-endian ids, no header; uint16 when the vocabulary
//    is <= 65536, else uint32 (a token dtype overrides);
//  * llm.c file, recognised by its magic whatever the extension: a 256 x int32
//    header, header[0] = 20240520, header[1] = version (1: uint16, 2: uint32),
//    header[2] = token count, tokens from byte 1024, the size exact;
//  * text (".txt", or format Text): every byte is one id; vocabulary >= 256.
//
// Window i is tokens[i*(S+1), (i+1)*(S+1)); inputs are its first S tokens,
// targets its last S. The k-th window consumed, k = (t*M + m)*B + r for step
// t, micro-batch m, row r, is window k mod n (Sequential) or perm_e[k mod n],
// e = k / n (Shuffle), perm_e a Fisher-Yates shuffle drawn from one SplitMix64
// generator seeded with the data seed and continuing across epochs.
//
//===----------------------------------------------------------------------===//

#ifndef WEIPIPE_RUNTIME_TRAIN_DATA_H
#define WEIPIPE_RUNTIME_TRAIN_DATA_H

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace weipipe::rt::train {

enum class DataFormat { Auto, Bin, Text };
enum class TokenDType { U16, U32 };
enum class DataOrder { Sequential, Shuffle };

/// Parse the CLI spellings ("auto", "bin", "text"; "uint16", "uint32";
/// "sequential", "shuffle").
std::optional<DataFormat> parseDataFormat(const std::string &s);
std::optional<TokenDType> parseTokenDType(const std::string &s);
std::optional<DataOrder> parseDataOrder(const std::string &s);
const char *dataOrderName(DataOrder o);

constexpr int32_t kLlmcMagic = 20240520;
constexpr uint64_t kLlmcHeaderBytes = 256 * 4;

/// A loaded, validated token file: the file stays memory-mapped and tokens are
/// widened on read, so a uint16 file costs no copy.
class TokenFile {
public:
  /// Maps `path` and checks it as the reference does: exists, is not a
  /// directory, is not empty, llm.c header consistent, size a multiple of
  /// the item size, at least one token, every id < vocab (naming the first
  /// offending token index, byte offset and value). `dtype` overrides the
  /// raw default (an error for text, or if it contradicts an llm.c header).
  static std::unique_ptr<TokenFile> load(const std::string &path, int64_t vocab,
                                         std::optional<TokenDType> dtype,
                                         DataFormat format, std::string *error);
  ~TokenFile();
  TokenFile(const TokenFile &) = delete;
  TokenFile &operator=(const TokenFile &) = delete;

  uint64_t size() const { return count_; }
  uint32_t operator[](uint64_t i) const {
    const uint8_t *p = base_ + i * item_;
    if (item_ == 1)
      return p[0];
    if (item_ == 2)
      return uint32_t(p[0]) | uint32_t(p[1]) << 8;
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
           uint32_t(p[3]) << 24;
  }
  const std::string &path() const { return path_; }
  const char *format() const { return format_; } ///< "raw", "llm.c", "text"
  const char *dtype() const { return dtype_; } ///< "uint8", "uint16", "uint32"
  /// "PATH: N tokens, raw uint16" (the reference's TokenFile.describe()).
  std::string describe() const;
  /// Why the mapped tokens can no longer be read ("" if they can): the file
  /// shrank under the run, and a read past its new end would be SIGBUS. A
  /// file replaced by rename keeps the old one mapped, which stays readable.
  /// One fstat; the trainers call it before every step.
  std::string shrunk() const;
  /// The mapped bytes: a SIGBUS inside them is the file shrinking between
  /// two checks (weipipe-run turns it into the same error).
  const void *mapping() const { return map_; }
  size_t mappingBytes() const { return mapBytes_; }

private:
  TokenFile() = default;
  std::string path_;
  int fd_ = -1; ///< kept open for shrunk()
  void *map_ = nullptr;
  size_t mapBytes_ = 0;
  const uint8_t *base_ = nullptr; ///< token 0
  uint64_t count_ = 0;
  unsigned item_ = 1;
  const char *format_ = "raw";
  const char *dtype_ = "uint16";
};

/// Vigna's SplitMix64 (all arithmetic mod 2^64).
class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

private:
  uint64_t state_;
};

/// One epoch's permutation of 0..n-1: for i from n-1 down to 1,
/// j = rng.next() % (i+1), swap perm[i] and perm[j].
void shufflePermutation(uint64_t n, SplitMix64 &rng,
                        std::vector<uint64_t> &perm);

/// The windows of S+1 tokens of a token file and the order they are consumed
/// in. Not thread-safe (it caches the current epoch's permutation).
class Windows {
public:
  /// Fails when seq < 1 or the file holds no full window.
  static std::optional<Windows> create(const TokenFile &tokens, int64_t seq,
                                       DataOrder order, uint64_t seed,
                                       std::string *error);

  uint64_t count() const { return n_; }
  int64_t seq() const { return seq_; }
  const TokenFile &tokens() const { return *tokens_; }
  /// The window index of the k-th window consumed. Going back to an earlier
  /// epoch restarts the generator from epoch 0, as the reference does.
  uint64_t index(uint64_t k);
  /// Rows k0 .. k0+rows-1: ids and targets [rows * seq] (row-major), and,
  /// if non-null, the window indices [rows].
  void fill(uint64_t k0, int64_t rows, int64_t *ids, int64_t *targets,
            uint64_t *windows = nullptr);
  /// Micro-batch m of 0-based step t (M micro-batches of B rows per step):
  /// windows k = (t*M + m)*B + r.
  void fillMicrobatch(int64_t step, int64_t m, int64_t microbatches,
                      int64_t batch, int64_t *ids, int64_t *targets,
                      uint64_t *windows = nullptr);

private:
  Windows(const TokenFile &t, int64_t seq, DataOrder o, uint64_t seed)
      : tokens_(&t), seq_(seq), order_(o), seed_(seed), rng_(seed) {}
  const TokenFile *tokens_;
  int64_t seq_;
  uint64_t n_ = 0;
  DataOrder order_;
  uint64_t seed_;
  SplitMix64 rng_;
  int64_t epoch_ = -1; ///< epoch of perm_; -1 = none drawn yet
  std::vector<uint64_t> perm_;
};

} // namespace weipipe::rt::train

#endif // WEIPIPE_RUNTIME_TRAIN_DATA_H
