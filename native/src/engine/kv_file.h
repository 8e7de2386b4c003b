#pragma once
// A session's KV cache on disk, so a long prefix (the packed workspace) survives restarts.
// Layout (little-endian, docs/architecture.md "Saved KV caches"):
//   [0, 128)        header (KVFileHeader), its last 8 bytes a checksum of the first 120
//   [128, 128 + 4n) the n token ids (int32)
//   data_offset     4096-aligned; then for every layer its K rows, then its V rows, each block
//                   n * position_bytes long and padded to a multiple of 4096, so every block can
//                   be copied straight from a memory mapping.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace ilm {

class MappedFile;

// What a KV file must match to be restored: the model, the cache's type and shape, the context.
struct KVFileShape {
  uint64_t fingerprint = 0;
  KVType type = KVType::F32;
  int n_layers = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  size_t position_bytes = 0;
  int vocab_size = 0;   // restore: every token id must be below it
  int max_tokens = 0;   // restore: the session's context
};

// Writes positions [0, tokens.size()) of cache with their tokens and RoPE base to path. The file
// is written under a temporary name in the same directory and renamed when complete, so path
// holds either its old contents or the whole new file. Returns the file's size in bytes.
uint64_t save_kv_file(const std::string& path, const KVCache& cache, const KVFileShape& shape,
                      const std::vector<int32_t>& tokens, float rope_base);

// A saved KV cache, mapped and fully validated against a session's shape.
class KVFile {
 public:
  // Throws ilm::Error naming what is wrong or what differs (not a KV file, truncated, corrupt,
  // another model, another KV type or shape, too long, a token outside the vocabulary).
  static KVFile open(const std::string& path, const KVFileShape& expected);

  const std::vector<int32_t>& tokens() const { return tokens_; }
  float rope_base() const { return rope_base_; }
  // Copies every layer's K and V rows into cache positions [0, tokens().size()); the cache must
  // already hold that many positions.
  void copy_into(KVCache& cache) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<int32_t> tokens_;
  float rope_base_ = 0.0f;
  int n_layers_ = 0;
  size_t data_offset_ = 0;
  size_t block_bytes_ = 0;
};

}  // namespace ilm
