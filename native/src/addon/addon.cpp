#include "addon/bindings.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ilm::addon::register_tokenizer(env, exports);
  ilm::addon::register_model(env, exports);
  ilm::addon::register_quantize(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(internlm, Init)
