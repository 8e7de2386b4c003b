#pragma once
// A model's identity for saved KV caches: a cache is only valid for the exact weights that made it.
#include <cstdint>
#include <string>

namespace ilm {

struct Model;

// A 64-bit hash of what determines the KV cache: the file-given hyperparameters, the vocabulary,
// every tensor's name, type and shape, and a few KB sampled from the start, middle and end of
// every tensor's data. Cheap even for a large file (it reads a few pages per tensor, not all
// weights); load-time options (RoPE scaling overrides) and the file's path do not enter it.
uint64_t model_fingerprint(const Model& model);

// 16 lowercase hex digits.
std::string fingerprint_hex(uint64_t fingerprint);

}  // namespace ilm
