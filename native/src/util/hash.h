#pragma once
// A small streaming 64-bit hash for identities and checksums (model fingerprints, KV file
// headers): FNV-1a over the bytes, then a MurmurHash3 finalizer so every input bit reaches
// every output bit. Not cryptographic; it guards against accidents, not adversaries.
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

namespace ilm {

class Hash64 {
 public:
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; i++) h_ = (h_ ^ p[i]) * 0x100000001b3ull;
  }
  template <typename T>
  void value(T v) {
    static_assert(std::is_arithmetic_v<T> || std::is_enum_v<T>, "hash plain values only");
    bytes(&v, sizeof v);
  }
  // Length first, so ("ab", "c") and ("a", "bc") differ.
  void string(const std::string& s) {
    value(uint64_t(s.size()));
    bytes(s.data(), s.size());
  }
  uint64_t digest() const {
    uint64_t x = h_;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace ilm
