#pragma once
// GGUF v2/v3 container reader over a memory-mapped file: header, metadata key/values and tensor
// infos. Every count, length and offset is checked against the file size before it is used, so a
// corrupt file gives an ilm::Error, never a crash or a large allocation. Tensor data stays in the
// mapping.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ilm {

class MappedFile;

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};

struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem_type = GgufType::U8;  // arrays only
  uint64_t count = 0;                 // arrays only: number of elements
  const uint8_t* data = nullptr;      // scalar bytes, string (u64 length + bytes) or array elements
};

struct GgufTensorInfo {
  std::string name;
  uint32_t type = 0;  // ggml type id
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};
  uint64_t offset = 0;  // from the start of the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

// ggml's name of a type id ("Q4_K"), or nullptr for ids this reader does not know.
const char* ggml_type_name(uint32_t type);

// True when the bytes start with the GGUF magic.
bool is_gguf(const uint8_t* data, size_t size);

class GgufFile {
 public:
  explicit GgufFile(std::shared_ptr<MappedFile> file);

  const std::string& path() const;
  const std::shared_ptr<MappedFile>& file() const { return file_; }

  const GgufValue* find(std::string_view key) const;
  // Typed getters: false when the key is absent; ilm::Error when it has the wrong type.
  bool get_int(std::string_view key, int64_t* out) const;  // any integer type
  bool get_float(std::string_view key, double* out) const; // F32/F64 (or an integer)
  bool get_bool(std::string_view key, bool* out) const;
  bool get_string(std::string_view key, std::string* out) const;
  // The array under KEY with elements of ELEM type, or nullptr when absent; ilm::Error otherwise.
  const GgufValue* get_array(std::string_view key, GgufType elem) const;
  // Calls FN for each element of a string array, in order.
  void for_each_string(const GgufValue& array, const std::function<void(uint64_t, std::string_view)>& fn) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* tensor(std::string_view name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  size_t alignment_ = 32;
  std::unordered_map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace ilm
