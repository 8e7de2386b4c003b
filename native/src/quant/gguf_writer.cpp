#include "quant/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace ilm::quant {
namespace {

constexpr uint64_t kAlignment = 32;  // GGUF's default (general.alignment absent)
enum : uint32_t { kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9 };

}  // namespace

GgufWriter::GgufWriter(const std::string& path) : path_(path), tmp_path_(path + ".partial") {
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!file_) throw Error("cannot write " + path + ": " + std::strerror(errno));
}

GgufWriter::~GgufWriter() {
  if (file_) std::fclose(file_);
  if (!finished_) std::remove(tmp_path_.c_str());
}

void GgufWriter::str(const std::string& s) {
  const uint64_t n = s.size();
  raw(&n, 8);
  raw(s.data(), s.size());
}

void GgufWriter::key(const std::string& k, uint32_t type) {
  str(k);
  raw(&type, 4);
  n_kv_++;
}

void GgufWriter::add_u32(const std::string& k, uint32_t v) { key(k, kU32), raw(&v, 4); }
void GgufWriter::add_f32(const std::string& k, float v) { key(k, kF32), raw(&v, 4); }
void GgufWriter::add_bool(const std::string& k, bool v) {
  const uint8_t b = v ? 1 : 0;
  key(k, kBool), raw(&b, 1);
}
void GgufWriter::add_string(const std::string& k, const std::string& v) { key(k, kString), str(v); }

void GgufWriter::add_string_array(const std::string& k, const std::vector<std::string>& v) {
  key(k, kArray);
  const uint32_t elem = kString;
  const uint64_t n = v.size();
  raw(&elem, 4), raw(&n, 8);
  for (const auto& s : v) str(s);
}

void GgufWriter::add_f32_array(const std::string& k, const std::vector<float>& v) {
  key(k, kArray);
  const uint32_t elem = kF32;
  const uint64_t n = v.size();
  raw(&elem, 4), raw(&n, 8), raw(v.data(), v.size() * 4);
}

void GgufWriter::add_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  key(k, kArray);
  const uint32_t elem = kI32;
  const uint64_t n = v.size();
  raw(&elem, 4), raw(&n, 8), raw(v.data(), v.size() * 4);
}

void GgufWriter::add_tensor(const std::string& name, DType type, int n_dims, int64_t ne0, int64_t ne1) {
  const uint64_t bytes = dtype_row_bytes(type, ne0) * uint64_t(ne1);
  uint64_t offset = 0;
  if (!tensors_.empty()) {
    const TensorInfo& last = tensors_.back();
    offset = (last.offset + last.bytes + kAlignment - 1) / kAlignment * kAlignment;
  }
  tensors_.push_back({name, type, n_dims, ne0, ne1, bytes, offset});
}

void GgufWriter::put(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, file_) != n) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
  written_ += n;
}

void GgufWriter::pad_to(uint64_t alignment) {
  static const uint8_t zeros[64] = {};
  const uint64_t pad = (alignment - written_ % alignment) % alignment;
  put(zeros, size_t(pad));
}

void GgufWriter::write_header() {
  std::vector<uint8_t> kv = std::move(header_);
  header_.clear();
  raw("GGUF", 4);
  const uint32_t version = 3;
  const uint64_t n_tensors = tensors_.size();
  raw(&version, 4), raw(&n_tensors, 8), raw(&n_kv_, 8);
  header_.insert(header_.end(), kv.begin(), kv.end());
  for (const TensorInfo& t : tensors_) {
    str(t.name);
    const uint32_t n_dims = uint32_t(t.n_dims), type = uint32_t(t.type);
    raw(&n_dims, 4);
    const int64_t ne[2] = {t.ne0, t.ne1};
    raw(ne, 8 * size_t(n_dims));
    raw(&type, 4), raw(&t.offset, 8);
  }
  put(header_.data(), header_.size());
  header_.clear();
  pad_to(kAlignment);
}

void GgufWriter::write(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    if (current_ >= tensors_.size()) throw Error("internal error: more tensor data than declared for " + path_);
    const TensorInfo& t = tensors_[current_];
    const size_t n = size_t(std::min<uint64_t>(bytes, t.bytes - current_done_));
    put(p, n);
    p += n, bytes -= n, current_done_ += n;
    if (current_done_ == t.bytes) {
      current_++, current_done_ = 0;
      if (current_ < tensors_.size()) pad_to(kAlignment);
    }
  }
}

void GgufWriter::finish() {
  if (current_ != tensors_.size()) throw Error("internal error: tensor data for " + path_ + " is incomplete");
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!closed) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    throw Error("cannot create " + path_ + ": " + std::strerror(errno));
  finished_ = true;
}

}  // namespace ilm::quant
