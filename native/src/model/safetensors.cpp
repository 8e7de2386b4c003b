#include "model/safetensors.h"

#include <cstring>

#include "util/error.h"
#include "util/json.h"
#include "util/mapped_file.h"

namespace ilm {

namespace {

// Element size of every dtype the format defines; 0 for unknown names.
size_t dtype_size(std::string_view dtype) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2},  {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8},  {"U64", 8},     {"F64", 8},
  };
  for (const auto& [name, size] : kSizes)
    if (dtype == name) return size;
  return 0;
}

}  // namespace

SafetensorsFile::SafetensorsFile(std::shared_ptr<MappedFile> file) : file_(std::move(file)) {
  const std::string& p = file_->path();
  const uint64_t size = file_->size();
  if (size < 8) throw Error(p + ": file is truncated (" + std::to_string(size) + " bytes, too small for a safetensors header)");
  uint64_t header_len;
  std::memcpy(&header_len, file_->data(), 8);
  if (header_len > size - 8)
    throw Error(p + ": file is truncated or not a safetensors file (header length " +
                std::to_string(header_len) + " exceeds the file size " + std::to_string(size) + ")");
  if (header_len > kMaxHeaderBytes)
    throw Error(p + ": safetensors header length " + std::to_string(header_len) +
                " exceeds the limit of " + std::to_string(kMaxHeaderBytes) + " bytes");
  if (header_len < 2 || file_->data()[8] != '{')
    throw Error(p + ": not a safetensors file (the header is not a JSON object)");

  const std::string_view text(reinterpret_cast<const char*>(file_->data() + 8), size_t(header_len));
  const Json header = Json::parse(text, p + " (safetensors header)");
  if (!header.is_object()) throw Error(p + ": safetensors header is not a JSON object");

  const uint8_t* data = file_->data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  tensors_.reserve(header.members().size());
  for (const auto& [name, entry] : header.members()) {
    if (name == "__metadata__") continue;
    auto bad = [&, &name = name](const std::string& why) {
      return Error(p + ": tensor '" + name + "': " + why);
    };
    if (!entry.is_object()) throw bad("entry is not an object");
    const Json* dtype = entry.find("dtype");
    const Json* shape = entry.find("shape");
    const Json* offsets = entry.find("data_offsets");
    if (!dtype || !dtype->is_string()) throw bad("missing or invalid \"dtype\"");
    if (!shape || !shape->is_array()) throw bad("missing or invalid \"shape\"");
    if (!offsets || !offsets->is_array() || offsets->items().size() != 2)
      throw bad("missing or invalid \"data_offsets\" (expected [begin, end])");

    SafetensorsTensor t;
    t.name = name;
    t.dtype = dtype->str();
    const size_t elem = dtype_size(t.dtype);
    if (elem == 0) throw bad("unknown dtype '" + t.dtype + "'");
    if (shape->items().size() > 8) throw bad("too many dimensions (" + std::to_string(shape->items().size()) + ")");
    uint64_t numel = 1;
    for (const Json& d : shape->items()) {
      uint64_t n;
      if (!d.to_u64(&n)) throw bad("shape has an invalid dimension");
      if (n != 0 && numel > data_size / n) numel = UINT64_MAX;  // larger than the file: caught below
      else numel *= n;
      t.shape.push_back(n);
    }
    uint64_t begin, end;
    if (!offsets->items()[0].to_u64(&begin) || !offsets->items()[1].to_u64(&end))
      throw bad("data_offsets are not non-negative integers");
    if (begin > end) throw bad("data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
    if (end > data_size)
      throw bad("data [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") runs past the end of the file (data section has " + std::to_string(data_size) +
                " bytes; the file is truncated or corrupt)");
    if (numel == UINT64_MAX || numel * elem != end - begin)
      throw bad("shape and dtype need " +
                (numel == UINT64_MAX ? std::string("more bytes than the file has")
                                     : std::to_string(numel * elem) + " bytes") +
                " but data_offsets span " + std::to_string(end - begin));
    t.data = data + begin;
    t.nbytes = size_t(end - begin);
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace ilm
