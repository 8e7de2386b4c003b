#pragma once
// Writes a GGUF v3 file: metadata and tensor infos first (sizes are known from types and shapes),
// then each tensor's bytes streamed in declaration order, so a multi-GB model never sits in memory.
// The file is written under a temporary name and renamed into place by finish(), so a failed or
// interrupted write never leaves a truncated model behind.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "model/tensor.h"

namespace ilm::quant {

class GgufWriter {
 public:
  // Creates PATH's temporary file right away, so an unwritable path fails before any work.
  explicit GgufWriter(const std::string& path);
  ~GgufWriter();  // removes the temporary file unless finish() succeeded
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  void add_u32(const std::string& key, uint32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);

  // ne0 elements per row, ne1 rows (1-D tensors: n_dims 1).
  void add_tensor(const std::string& name, DType type, int n_dims, int64_t ne0, int64_t ne1);

  // Writes the header; afterwards write() appends the tensors' bytes in add_tensor order.
  void write_header();
  void write(const void* data, size_t bytes);
  // Checks every tensor got exactly its bytes, flushes and renames the file into place.
  void finish();

  uint64_t bytes_written() const { return written_; }

 private:
  struct TensorInfo {
    std::string name;
    DType type;
    int n_dims;
    int64_t ne0, ne1;
    uint64_t bytes, offset;
  };
  void key(const std::string& k, uint32_t type);
  void raw(const void* p, size_t n) { header_.insert(header_.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n); }
  void str(const std::string& s);
  void put(const void* p, size_t n);
  void pad_to(uint64_t alignment);

  std::string path_, tmp_path_;
  std::FILE* file_ = nullptr;
  bool finished_ = false;
  std::vector<uint8_t> header_;  // the KV section while metadata is added
  uint64_t n_kv_ = 0;
  std::vector<TensorInfo> tensors_;
  size_t current_ = 0;        // tensor being written
  uint64_t current_done_ = 0; // its bytes so far
  uint64_t written_ = 0;
};

}  // namespace ilm::quant
