#include "model/gguf.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"
#include "util/mapped_file.h"

namespace ilm {

namespace {

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

struct TypeTraits {
  const char* name;
  uint32_t block;  // elements per block
  uint32_t bytes;  // bytes per block
};

// ggml's block layout per type id: enough to bound every tensor's bytes, even of types this
// build cannot compute with.
const TypeTraits* type_traits(uint32_t type) {
  static const TypeTraits kTable[] = {
      {"F32", 1, 4},        {"F16", 1, 2},      {"Q4_0", 32, 18},    {"Q4_1", 32, 20},
      {nullptr, 0, 0},      {nullptr, 0, 0},    {"Q5_0", 32, 22},    {"Q5_1", 32, 24},
      {"Q8_0", 32, 34},     {"Q8_1", 32, 36},   {"Q2_K", 256, 84},   {"Q3_K", 256, 110},
      {"Q4_K", 256, 144},   {"Q5_K", 256, 176}, {"Q6_K", 256, 210},  {"Q8_K", 256, 292},
      {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
      {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},  {"IQ4_XS", 256, 136},
      {"I8", 1, 1},         {"I16", 1, 2},      {"I32", 1, 4},       {"I64", 1, 8},
      {"F64", 1, 8},        {"IQ1_M", 256, 56}, {"BF16", 1, 2},      {nullptr, 0, 0},
      {nullptr, 0, 0},      {nullptr, 0, 0},    {"TQ1_0", 256, 54},  {"TQ2_0", 256, 66},
      {nullptr, 0, 0},      {nullptr, 0, 0},    {nullptr, 0, 0},     {"MXFP4", 32, 17},
  };
  if (type >= sizeof(kTable) / sizeof(kTable[0]) || !kTable[type].name) return nullptr;
  return &kTable[type];
}

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::Bool: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

const char* value_type_name(GgufType t) {
  static const char* const kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                       "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) < 13 ? kNames[uint32_t(t)] : "unknown";
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Bounds-checked sequential reads; every error names the file and the byte offset.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path)
      : data_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path_ + ": " + what + " (at byte " + std::to_string(pos_) + " of " +
                std::to_string(size_) + ")");
  }
  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail(std::string("file is truncated: ") + what + " runs past the end of the file");
  }
  void skip(uint64_t n, const char* what) {
    need(n, what);
    pos_ += size_t(n);
  }
  uint32_t u32(const char* what) {
    need(4, what);
    pos_ += 4;
    return load<uint32_t>(data_ + pos_ - 4);
  }
  uint64_t u64(const char* what) {
    need(8, what);
    pos_ += 8;
    return load<uint64_t>(data_ + pos_ - 8);
  }
  std::string_view str(const char* what) {
    const uint64_t len = u64(what);
    if (len > remaining())
      fail(std::string("file is truncated or corrupt: ") + what + " length " +
           std::to_string(len) + " runs past the end of the file");
    pos_ += size_t(len);
    return std::string_view(reinterpret_cast<const char*>(data_ + pos_ - len), size_t(len));
  }

 private:
  const uint8_t* data_;
  size_t size_;
  const std::string& path_;
  size_t pos_ = 0;
};

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 80)) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  if (s.size() > 80) out += "...";
  return out + "'";
}

// Records the value of TYPE at the cursor (checking every length) and moves past it.
void read_value(Cursor& c, GgufType type, GgufValue& v, const std::string& key) {
  v.type = type;
  v.data = c.here();
  if (type == GgufType::String) {
    c.str("string value");
  } else if (type == GgufType::Array) {
    const uint32_t elem = c.u32("array type");
    const uint64_t count = c.u64("array length");
    v.elem_type = GgufType(elem);
    v.count = count;
    v.data = c.here();
    if (v.elem_type == GgufType::Array)
      c.fail("metadata " + quoted(key) + " is an array of arrays, which is not supported");
    if (v.elem_type == GgufType::String) {
      // Each string needs at least its 8-byte length: bound the count before walking it.
      if (count > c.remaining() / 8)
        c.fail("file is truncated or corrupt: metadata " + quoted(key) + " claims " + std::to_string(count) +
               " strings, more than the file can hold");
      for (uint64_t i = 0; i < count; i++) c.str("string in array");
    } else {
      const size_t es = scalar_size(v.elem_type);
      if (es == 0)
        c.fail("metadata " + quoted(key) + " has unknown array element type " + std::to_string(elem));
      if (count > c.remaining() / es)
        c.fail("file is truncated or corrupt: metadata " + quoted(key) + " claims " + std::to_string(count) +
               " elements, more than the file can hold");
      c.skip(count * es, "array");
    }
  } else {
    const size_t n = scalar_size(type);
    if (n == 0) c.fail("metadata " + quoted(key) + " has unknown value type " + std::to_string(uint32_t(type)));
    c.skip(n, "metadata value");
  }
}

}  // namespace

const char* ggml_type_name(uint32_t type) {
  const TypeTraits* t = type_traits(type);
  return t ? t->name : nullptr;
}

bool is_gguf(const uint8_t* data, size_t size) {
  return size >= 4 && std::memcmp(data, "GGUF", 4) == 0;
}

GgufFile::GgufFile(std::shared_ptr<MappedFile> file) : file_(std::move(file)) {
  const std::string& p = file_->path();
  Cursor c(file_->data(), file_->size(), p);
  if (file_->size() < 4) c.fail("file is too small to be a GGUF file");
  if (!is_gguf(file_->data(), file_->size())) {
    std::string magic;
    for (int i = 0; i < 4; i++) {
      const unsigned char ch = file_->data()[i];
      magic += (ch >= 0x20 && ch < 0x7f) ? char(ch) : '?';
    }
    throw Error(p + ": not a GGUF file (magic '" + magic + "', expected 'GGUF')");
  }
  c.skip(4, "magic");
  const uint32_t version = c.u32("version");
  if (version != 2 && version != 3) {
    std::string hint;
    if (version == 1) hint = " (GGUF v1 is obsolete; re-convert the model)";
    else if ((version & 0xffff) == 0 && (version >> 16) != 0) hint = " (a big-endian file?)";
    throw Error(p + ": unsupported GGUF version " + std::to_string(version) +
                " (supported: 2 and 3)" + hint);
  }
  const uint64_t n_tensors = c.u64("tensor count");
  const uint64_t n_kv = c.u64("metadata count");
  // Minimal encodings: a key/value takes >= 8 + 4 + 1 bytes, a tensor info >= 8 + 4 + 4 + 8 bytes.
  if (n_kv > c.remaining() / 13)
    c.fail("file is truncated or corrupt: metadata count " + std::to_string(n_kv) + " is more than the file can hold");
  if (n_tensors > c.remaining() / 24)
    c.fail("file is truncated or corrupt: tensor count " + std::to_string(n_tensors) + " is more than the file can hold");

  // Counts are only bounded by the file size so far: reserve modestly and grow as entries parse.
  kv_.reserve(size_t(std::min<uint64_t>(n_kv, 1024)));
  for (uint64_t i = 0; i < n_kv; i++) {
    const std::string key(c.str("metadata key"));
    const uint32_t type = c.u32("metadata type");
    GgufValue v;
    read_value(c, GgufType(type), v, key);
    if (!kv_.emplace(key, v).second) c.fail("duplicate metadata key " + quoted(key));
  }

  int64_t align = 32;
  if (get_int("general.alignment", &align)) {
    if (align <= 0 || align > (1 << 30) || (align & (align - 1)) != 0)
      throw Error(p + ": general.alignment " + std::to_string(align) + " is not a power of two");
    alignment_ = size_t(align);
  }

  tensors_.reserve(size_t(std::min<uint64_t>(n_tensors, 4096)));
  for (uint64_t i = 0; i < n_tensors; i++) {
    GgufTensorInfo t;
    t.name = std::string(c.str("tensor name"));
    t.n_dims = c.u32("tensor dimension count");
    if (t.n_dims == 0 || t.n_dims > kMaxDims)
      c.fail("tensor " + quoted(t.name) + " has " + std::to_string(t.n_dims) +
             " dimensions (1 to 4 allowed)");
    for (uint32_t d = 0; d < t.n_dims; d++) {
      const uint64_t n = c.u64("tensor shape");
      if (n > (uint64_t(1) << 40)) c.fail("tensor " + quoted(t.name) + " has an absurd dimension " + std::to_string(n));
      t.ne[d] = int64_t(n);
    }
    t.type = c.u32("tensor type");
    t.offset = c.u64("tensor offset");
    const TypeTraits* tt = type_traits(t.type);
    if (!tt) c.fail("tensor " + quoted(t.name) + " has unknown type id " + std::to_string(t.type));
    if (t.ne[0] % tt->block != 0)
      c.fail("tensor " + quoted(t.name) + " of type " + tt->name + " has rows of " +
             std::to_string(t.ne[0]) + " elements, not a multiple of its block size " +
             std::to_string(tt->block));
    // Byte size with overflow checks: no dimension exceeds 2^40, so each product is checked.
    uint64_t nbytes = uint64_t(t.ne[0]) / tt->block * tt->bytes;
    for (int d = 1; d < 4; d++) {
      const uint64_t n = uint64_t(t.ne[d]);
      if (n != 0 && nbytes > file_->size() / n)
        c.fail("file is truncated or corrupt: tensor " + quoted(t.name) + " is larger than the file");
      nbytes *= n;
    }
    if (nbytes > file_->size()) c.fail("file is truncated or corrupt: tensor " + quoted(t.name) + " is larger than the file");
    if (t.offset % alignment_ != 0)
      c.fail("tensor " + quoted(t.name) + " offset " + std::to_string(t.offset) +
             " is not a multiple of the alignment " + std::to_string(alignment_));
    t.nbytes = size_t(nbytes);
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment after the tensor infos.
  const size_t header_end = c.pos();
  const size_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
  for (size_t i = 0; i < tensors_.size(); i++) {
    GgufTensorInfo& t = tensors_[i];
    const uint64_t size = file_->size();
    if (data_start > size || t.offset > size - data_start || t.nbytes > size - data_start - t.offset)
      throw Error(p + ": file is truncated: tensor " + quoted(t.name) + " (" +
                  std::to_string(t.nbytes) + " bytes at offset " + std::to_string(t.offset) +
                  " of the data section at byte " + std::to_string(data_start) +
                  ") runs past the end of the file (" + std::to_string(size) + " bytes)");
    t.data = file_->data() + data_start + t.offset;
    if (!tensor_index_.emplace(t.name, i).second)
      throw Error(p + ": duplicate tensor name " + quoted(t.name));
  }
}

const std::string& GgufFile::path() const { return file_->path(); }

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(std::string(key));
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void wrong_type(const std::string& path, std::string_view key, GgufType got, const char* want) {
  throw Error(path + ": metadata '" + std::string(key) + "' has type " + value_type_name(got) +
              ", expected " + want);
}
}  // namespace

bool GgufFile::get_int(std::string_view key, int64_t* out) const {
  const GgufValue* v = find(key);
  if (!v) return false;
  switch (v->type) {
    case GgufType::U8: *out = load<uint8_t>(v->data); break;
    case GgufType::I8: *out = load<int8_t>(v->data); break;
    case GgufType::U16: *out = load<uint16_t>(v->data); break;
    case GgufType::I16: *out = load<int16_t>(v->data); break;
    case GgufType::U32: *out = load<uint32_t>(v->data); break;
    case GgufType::I32: *out = load<int32_t>(v->data); break;
    case GgufType::I64: *out = load<int64_t>(v->data); break;
    case GgufType::U64: {
      const uint64_t u = load<uint64_t>(v->data);
      *out = u > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(u);
      break;
    }
    default: wrong_type(path(), key, v->type, "an integer");
  }
  return true;
}

bool GgufFile::get_float(std::string_view key, double* out) const {
  const GgufValue* v = find(key);
  if (!v) return false;
  if (v->type == GgufType::F32) {
    *out = load<float>(v->data);
  } else if (v->type == GgufType::F64) {
    *out = load<double>(v->data);
  } else {
    int64_t i;
    if (v->type == GgufType::Bool || v->type == GgufType::String || v->type == GgufType::Array)
      wrong_type(path(), key, v->type, "a number");
    get_int(key, &i);
    *out = double(i);
  }
  return true;
}

bool GgufFile::get_bool(std::string_view key, bool* out) const {
  const GgufValue* v = find(key);
  if (!v) return false;
  if (v->type != GgufType::Bool) wrong_type(path(), key, v->type, "bool");
  *out = *v->data != 0;
  return true;
}

bool GgufFile::get_string(std::string_view key, std::string* out) const {
  const GgufValue* v = find(key);
  if (!v) return false;
  if (v->type != GgufType::String) wrong_type(path(), key, v->type, "string");
  const uint64_t len = load<uint64_t>(v->data);  // checked when the header was read
  out->assign(reinterpret_cast<const char*>(v->data + 8), size_t(len));
  return true;
}

const GgufValue* GgufFile::get_array(std::string_view key, GgufType elem) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  if (v->type != GgufType::Array || v->elem_type != elem)
    throw Error(path() + ": metadata '" + std::string(key) + "' should be an array of " +
                value_type_name(elem) + (v->type == GgufType::Array
                                             ? std::string(", got an array of ") + value_type_name(v->elem_type)
                                             : std::string(", got ") + value_type_name(v->type)));
  return v;
}

void GgufFile::for_each_string(const GgufValue& array,
                               const std::function<void(uint64_t, std::string_view)>& fn) const {
  const uint8_t* p = array.data;
  for (uint64_t i = 0; i < array.count; i++) {
    const uint64_t len = load<uint64_t>(p);  // every length was checked when the header was read
    fn(i, std::string_view(reinterpret_cast<const char*>(p + 8), size_t(len)));
    p += 8 + len;
  }
}

const GgufTensorInfo* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace ilm
