#include "engine/kv_type.h"

#include "util/error.h"

namespace ilm {

KVType parse_kv_type(const std::string& name) {
  if (name == "f32") return KVType::F32;
  if (name == "f16") return KVType::F16;
  if (name == "q8") return KVType::Q8;
  if (name == "q4") return KVType::Q4;
  throw Error("unknown KV cache type '" + name + "' (expected f32, f16, q8 or q4)");
}

const char* kv_type_name(KVType type) {
  switch (type) {
    case KVType::F32: return "f32";
    case KVType::F16: return "f16";
    case KVType::Q8: return "q8";
    case KVType::Q4: return "q4";
  }
  return "?";
}

}  // namespace ilm
