//===- fuzz-data.cpp - libFuzzer target: token files ----------------------===//
//
// Part of weipipe's tests. The first 4 bytes choose how the rest is loaded:
// byte 0 the format (auto with a .bin or a .txt name, bin, text), the token
// dtype (default, uint16, uint32) and the order (sequential, shuffle); byte 1
// the vocabulary; byte 2 the sequence length; byte 3 the batch and the step.
// The rest is the file, written to a temporary file and loaded with
// TokenFile::load; a file that loads gives its windows (Windows::create) and
// fills micro-batches of early and later steps. Every id read must be
// below the vocabulary, and every rejection must carry a message.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"
#include "weipipe/runtime/train/Data.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

using namespace weipipe::rt::train;

namespace {

std::string dir;

using weipipe::fuzz::check;

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  dir = weipipe::fuzz::makeTempDir("fuzz-data");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4)
    return 0;
  const uint8_t mode = data[0];
  const int64_t vocabs[] = {0,
                            1,
                            2,
                            7,
                            255,
                            256,
                            257,
                            65535,
                            65536,
                            65537,
                            50257,
                            int64_t(1) << 20,
                            INT32_MAX,
                            int64_t(UINT32_MAX),
                            int64_t(1) << 40,
                            -1};
  const int64_t seqs[] = {1,
                          2,
                          3,
                          4,
                          7,
                          8,
                          15,
                          64,
                          255,
                          1023,
                          0,
                          -1,
                          int64_t(1) << 31,
                          int64_t(1) << 40,
                          INT64_MAX,
                          5};
  const int64_t vocab = vocabs[data[1] % std::size(vocabs)];
  const int64_t seq = seqs[data[2] % std::size(seqs)];
  const int64_t batch = 1 + (data[3] & 3);
  const int64_t microbatches = 1 + ((data[3] >> 2) & 3);

  DataFormat format = DataFormat::Auto;
  bool textName = false;
  switch (mode & 3) {
  case 0:
    break;
  case 1:
    textName = true;
    break;
  case 2:
    format = DataFormat::Bin;
    break;
  default:
    format = DataFormat::Text;
    break;
  }
  std::optional<TokenDType> dtype;
  if ((mode >> 2 & 3) == 1)
    dtype = TokenDType::U16;
  else if ((mode >> 2 & 3) == 2)
    dtype = TokenDType::U32;
  const DataOrder order =
      mode >> 4 & 1 ? DataOrder::Shuffle : DataOrder::Sequential;

  const std::string path = dir + (textName ? "/tokens.txt" : "/tokens.bin");
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(data + 4, 1, size - 4, f) != size - 4 ||
      std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }

  std::string error;
  auto tokens = TokenFile::load(path, vocab, dtype, format, &error);
  if (!tokens) {
    check(!error.empty(), "TokenFile::load failed without a message");
    return 0;
  }
  check(tokens->size() > 0, "a loaded token file holds no token");
  check(!tokens->describe().empty(), "describe() is empty");
  for (uint64_t i = 0; i < tokens->size(); ++i)
    check(int64_t((*tokens)[i]) < vocab, "a token id is over the vocabulary");

  auto windows = Windows::create(*tokens, seq, order, mode >> 5, &error);
  if (!windows) {
    check(!error.empty(), "Windows::create failed without a message");
    return 0;
  }
  check(windows->count() > 0, "no windows");
  check(seq >= 1 && uint64_t(seq) < tokens->size(), "window longer than data");
  std::vector<int64_t> ids(size_t(batch * seq)), targets(size_t(batch * seq));
  std::vector<uint64_t> used(static_cast<size_t>(batch));
  // Later steps cross epochs (each a new permutation): far enough for that,
  // near enough to stay fast (a shuffled step k costs O(k) to reach).
  for (int64_t step : {0, 1, 3, 997}) {
    for (int64_t m = 0; m < microbatches; ++m) {
      windows->fillMicrobatch(step, m, microbatches, batch, ids.data(),
                              targets.data(), used.data());
      for (int64_t r = 0; r < batch; ++r) {
        check(used[size_t(r)] < windows->count(), "window index out of range");
        for (int64_t s = 0; s < seq; ++s) {
          const int64_t at = r * seq + s;
          check(ids[size_t(at)] >= 0 && ids[size_t(at)] < vocab &&
                    targets[size_t(at)] >= 0 && targets[size_t(at)] < vocab,
                "a filled id is outside the vocabulary");
          if (s + 1 < seq)
            check(targets[size_t(at)] == ids[size_t(at + 1)],
                  "targets are not the inputs shifted by one");
        }
      }
    }
  }
  return 0;
}
