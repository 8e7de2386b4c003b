#pragma once
// safetensors reader over a memory-mapped file: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
// Offsets are relative to the end of the header. Every entry is checked against the file size.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ilm {

class MappedFile;

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // as written: "BF16", "F32", "I64", ...
  std::vector<uint64_t> shape;  // outermost first (row-major)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class SafetensorsFile {
 public:
  // Largest header accepted: generous for thousands of tensors, small enough to parse safely.
  static constexpr uint64_t kMaxHeaderBytes = 16u << 20;

  explicit SafetensorsFile(std::shared_ptr<MappedFile> file);

  const std::shared_ptr<MappedFile>& file() const { return file_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace ilm
