#pragma once
// Each binding module adds its exports here; addon.cpp calls them all.
#include <napi.h>

namespace ilm::addon {

void register_tokenizer(Napi::Env env, Napi::Object exports);
void register_model(Napi::Env env, Napi::Object exports);
void register_quantize(Napi::Env env, Napi::Object exports);

// Runs fn and rethrows any std::exception (ilm::Error included) as a JS Error.
// Built with NAPI_CPP_EXCEPTIONS, so a thrown Napi::Error becomes the JS exception.
template <typename Fn>
auto guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace ilm::addon
