#include "engine/kv_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "model/fingerprint.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/mapped_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "KV files are written in host byte order, which must be little-endian"
#endif

namespace ilm {
namespace {

constexpr char kMagic[8] = {'I', 'N', 'T', 'E', 'R', 'N', 'K', 'V'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kAlign = 4096;
// Rows are copied through a bounded buffer when saving, whatever the cache's size.
constexpr size_t kCopyBufferBytes = size_t(16) << 20;

struct KVFileHeader {
  char magic[8];
  uint32_t version;
  uint32_t kv_type;          // KVType's value: 0 f32, 1 f16, 2 q8, 3 q4
  uint64_t fingerprint;      // model/fingerprint.h
  uint32_t rope_base_bits;   // the float's exact bits
  uint32_t n_layers;
  uint32_t n_kv_heads;
  uint32_t head_dim;
  uint64_t position_bytes;   // one position's row of one layer's K (or V), all KV heads
  uint64_t n_tokens;
  uint64_t data_offset;      // where layer 0's K block starts
  uint64_t block_bytes;      // stride of the K and V blocks: n_tokens * position_bytes, padded
  uint64_t file_bytes;       // the whole file
  uint64_t tokens_checksum;  // Hash64 of the token ids
  uint8_t reserved[32];      // zero
  uint64_t header_checksum;  // Hash64 of the 120 bytes above
};
static_assert(sizeof(KVFileHeader) == 128, "the header is 128 bytes on disk");
constexpr size_t kChecksummedBytes = offsetof(KVFileHeader, header_checksum);

struct Layout {
  uint64_t data_offset = 0;
  uint64_t block_bytes = 0;
  uint64_t file_bytes = 0;
};

uint64_t align_up(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Where everything lies for these sizes; false when a size overflows 64 bits.
bool layout_for(uint64_t n_tokens, uint64_t position_bytes, uint64_t n_layers, Layout* out) {
  uint64_t block = 0, blocks = 0, data = 0;
  if (__builtin_mul_overflow(n_tokens, position_bytes, &block) || block > UINT64_MAX - kAlign) return false;
  out->block_bytes = align_up(block);
  out->data_offset = align_up(sizeof(KVFileHeader) + n_tokens * sizeof(int32_t));
  if (__builtin_mul_overflow(n_layers, uint64_t(2), &blocks) ||
      __builtin_mul_overflow(blocks, out->block_bytes, &data) ||
      __builtin_add_overflow(data, out->data_offset, &out->file_bytes))
    return false;
  return true;
}

uint64_t checksum(const void* data, size_t n) {
  Hash64 h;
  h.bytes(data, n);
  return h.digest();
}

uint64_t block_offset(const Layout& layout, int layer, bool value) {
  return layout.data_offset + (uint64_t(layer) * 2 + (value ? 1 : 0)) * layout.block_bytes;
}

std::string bytes_text(uint64_t n) { return std::to_string(n) + " bytes"; }

// ---------------------------------------------------------------- writing

// A file written under a unique temporary name next to its final path; commit() makes it
// durable and renames it into place, and anything short of that removes it.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    static std::atomic<uint64_t> counter{0};
    for (;;) {
      temp_ = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ >= 0) return;
      if (errno != EEXIST) fail();
    }
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      const ssize_t done = ::write(fd_, p, std::min(n, size_t(1) << 30));
      if (done < 0) {
        if (errno == EINTR) continue;
        fail();
      }
      p += done;
      n -= size_t(done);
      written_ += uint64_t(done);
    }
  }
  void pad_to(uint64_t offset) {
    static const uint8_t zeros[kAlign] = {};
    while (written_ < offset) write(zeros, size_t(std::min<uint64_t>(offset - written_, kAlign)));
  }
  uint64_t written() const { return written_; }

  void commit() {
    // fsync before rename: after a crash the final name never points at unwritten blocks.
    if (::fsync(fd_) != 0) fail();
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail();
    if (::rename(temp_.c_str(), path_.c_str()) != 0) fail();
    committed_ = true;
  }

 private:
  [[noreturn]] void fail() const {
    throw Error("cannot save the KV cache to " + path_ + ": " + std::strerror(errno));
  }

  std::string path_, temp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

void write_block(AtomicFile& out, const KVCache& cache, int layer, bool value, int n, std::vector<uint8_t>& buffer) {
  const size_t row = cache.position_bytes();
  const int per_copy = int(std::max<size_t>(1, std::min<size_t>(kCopyBufferBytes / row, size_t(n))));
  buffer.resize(size_t(per_copy) * row);
  for (int from = 0; from < n; from += per_copy) {
    const int count = std::min(per_copy, n - from);
    cache.read_rows(layer, value, from, count, buffer.data());
    out.write(buffer.data(), size_t(count) * row);
  }
}

// ---------------------------------------------------------------- reading

std::string describe_shape(uint64_t layers, uint64_t heads, uint64_t head_dim, uint64_t position_bytes) {
  return std::to_string(layers) + " layers x " + std::to_string(heads) + " KV heads x " + std::to_string(head_dim) +
         " (" + bytes_text(position_bytes) + " per position)";
}

// The header's own consistency: sane sizes and offsets that agree with them.
void check_header_sizes(const KVFileHeader& h, const std::string& what) {
  auto corrupt = [&](const std::string& why) { throw Error(what + " is corrupt (" + why + ")"); };
  if (h.kv_type > uint32_t(KVType::Q4)) corrupt("unknown KV type " + std::to_string(h.kv_type));
  if (h.n_layers == 0 || h.n_layers > (1u << 10)) corrupt("layer count " + std::to_string(h.n_layers));
  if (h.n_kv_heads == 0 || h.n_kv_heads > (1u << 10)) corrupt("KV head count " + std::to_string(h.n_kv_heads));
  if (h.head_dim == 0 || h.head_dim > (1u << 16)) corrupt("head dimension " + std::to_string(h.head_dim));
  if (h.position_bytes == 0 || h.position_bytes > (uint64_t(1) << 32))
    corrupt("position size " + bytes_text(h.position_bytes));
  if (h.n_tokens == 0 || h.n_tokens > uint64_t(INT_MAX)) corrupt("token count " + std::to_string(h.n_tokens));
  for (uint8_t b : h.reserved)
    if (b != 0) corrupt("reserved header bytes are not zero");
  Layout layout;
  if (!layout_for(h.n_tokens, h.position_bytes, h.n_layers, &layout)) corrupt("sizes overflow");
  if (h.data_offset != layout.data_offset || h.block_bytes != layout.block_bytes || h.file_bytes != layout.file_bytes)
    corrupt("its offsets do not match its sizes");
}

KVFileHeader read_header(const MappedFile& file, const std::string& what) {
  const size_t size = file.size();
  if (size >= sizeof kMagic && std::memcmp(file.data(), kMagic, sizeof kMagic) != 0)
    throw Error(file.path() + " is not a saved KV cache (it does not start with \"INTERNKV\")");
  if (size < sizeof(KVFileHeader))
    throw Error(what + " is truncated (" + std::to_string(size) + " of at least " + bytes_text(sizeof(KVFileHeader)) + ")");
  KVFileHeader h;
  std::memcpy(&h, file.data(), sizeof h);
  if (h.version != kVersion)
    throw Error(what + " has format version " + std::to_string(h.version) + "; this build reads version " +
                std::to_string(kVersion) + " (save it again)");
  if (checksum(&h, kChecksummedBytes) != h.header_checksum)
    throw Error(what + " is corrupt (its header checksum does not match)");
  check_header_sizes(h, what);
  if (size < h.file_bytes)
    throw Error(what + " is truncated (" + std::to_string(size) + " of " + bytes_text(h.file_bytes) + ")");
  if (size > h.file_bytes)
    throw Error(what + " is corrupt (" + bytes_text(size) + " where its header says " + std::to_string(h.file_bytes) + ")");
  return h;
}

// Whether this file can go into a session of `expected`'s model, type and context.
void check_compatible(const KVFileHeader& h, const KVFileShape& expected, const std::string& what) {
  if (h.fingerprint != expected.fingerprint)
    throw Error(what + " was made by a different model (fingerprint " + fingerprint_hex(h.fingerprint) +
                ", this model's is " + fingerprint_hex(expected.fingerprint) + ")");
  if (h.kv_type != uint32_t(expected.type))
    throw Error(what + " has KV type " + kv_type_name(KVType(h.kv_type)) + ", this session uses " +
                kv_type_name(expected.type) + " (create the session with kvType \"" +
                kv_type_name(KVType(h.kv_type)) + "\" to restore it)");
  if (h.n_layers != uint32_t(expected.n_layers) || h.n_kv_heads != uint32_t(expected.n_kv_heads) ||
      h.head_dim != uint32_t(expected.head_dim) || h.position_bytes != expected.position_bytes)
    throw Error(what + " has shape " + describe_shape(h.n_layers, h.n_kv_heads, h.head_dim, h.position_bytes) +
                ", this session's cache is " +
                describe_shape(expected.n_layers, expected.n_kv_heads, expected.head_dim, expected.position_bytes));
  float base;
  std::memcpy(&base, &h.rope_base_bits, sizeof base);
  if (!std::isfinite(base) || base <= 0.0f) throw Error(what + " is corrupt (RoPE base " + std::to_string(base) + ")");
  if (h.n_tokens > uint64_t(expected.max_tokens))
    throw Error(what + " holds " + std::to_string(h.n_tokens) + " tokens, more than this session's context of " +
                std::to_string(expected.max_tokens) + " tokens");
}

std::vector<int32_t> read_tokens(const MappedFile& file, const KVFileHeader& h, int vocab_size, const std::string& what) {
  const uint8_t* at = file.data() + sizeof(KVFileHeader);
  const size_t n = size_t(h.n_tokens);
  if (checksum(at, n * sizeof(int32_t)) != h.tokens_checksum)
    throw Error(what + " is corrupt (its token list checksum does not match)");
  std::vector<int32_t> tokens(n);
  std::memcpy(tokens.data(), at, n * sizeof(int32_t));
  for (size_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= vocab_size)
      throw Error(what + " holds token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                  ", outside this model's vocabulary of " + std::to_string(vocab_size) + " tokens");
  return tokens;
}

}  // namespace

uint64_t save_kv_file(const std::string& path, const KVCache& cache, const KVFileShape& shape,
                      const std::vector<int32_t>& tokens, float rope_base) {
  const int n = int(tokens.size());
  if (n <= 0) throw Error("cannot save an empty KV cache (the session holds no tokens)");
  if (n > cache.capacity()) throw Error("cannot save " + std::to_string(n) + " positions of a KV cache that holds fewer");
  KVFileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.kv_type = uint32_t(cache.type());
  h.fingerprint = shape.fingerprint;
  std::memcpy(&h.rope_base_bits, &rope_base, sizeof rope_base);
  h.n_layers = uint32_t(shape.n_layers);
  h.n_kv_heads = uint32_t(shape.n_kv_heads);
  h.head_dim = uint32_t(shape.head_dim);
  h.position_bytes = cache.position_bytes();
  h.n_tokens = uint64_t(n);
  Layout layout;
  layout_for(h.n_tokens, h.position_bytes, h.n_layers, &layout);  // cannot overflow for a cache in memory
  h.data_offset = layout.data_offset;
  h.block_bytes = layout.block_bytes;
  h.file_bytes = layout.file_bytes;
  h.tokens_checksum = checksum(tokens.data(), tokens.size() * sizeof(int32_t));
  h.header_checksum = checksum(&h, kChecksummedBytes);

  AtomicFile out(path);
  out.write(&h, sizeof h);
  out.write(tokens.data(), tokens.size() * sizeof(int32_t));
  std::vector<uint8_t> buffer;
  for (int layer = 0; layer < shape.n_layers; layer++) {
    for (bool value : {false, true}) {
      out.pad_to(block_offset(layout, layer, value));
      write_block(out, cache, layer, value, n, buffer);
    }
  }
  out.pad_to(layout.file_bytes);
  out.commit();
  return layout.file_bytes;
}

KVFile KVFile::open(const std::string& path, const KVFileShape& expected) {
  KVFile f;
  f.file_ = MappedFile::open(path);
  const std::string what = "the saved KV cache " + path;
  const KVFileHeader h = read_header(*f.file_, what);
  check_compatible(h, expected, what);
  f.tokens_ = read_tokens(*f.file_, h, expected.vocab_size, what);
  std::memcpy(&f.rope_base_, &h.rope_base_bits, sizeof f.rope_base_);
  f.n_layers_ = int(h.n_layers);
  f.data_offset_ = size_t(h.data_offset);
  f.block_bytes_ = size_t(h.block_bytes);
  return f;
}

void KVFile::copy_into(KVCache& cache) const {
  Layout layout;
  layout.data_offset = data_offset_;
  layout.block_bytes = block_bytes_;
  const int n = int(tokens_.size());
  for (int layer = 0; layer < n_layers_; layer++)
    for (bool value : {false, true})
      cache.write_rows(layer, value, 0, n, file_->data() + block_offset(layout, layer, value));
}

}  // namespace ilm
