#pragma once
// `internlm quantize`: an InternLM2 model (Hugging Face checkpoint directory or F32/F16/BF16 GGUF)
// to a GGUF file of one of llama.cpp's file types, with llama.cpp's per-tensor type mix and
// metadata, loadable by llama.cpp and by this engine.
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace ilm::quant {

struct QuantizeOptions {
  std::string input;   // HF directory or .gguf
  std::string output;  // .gguf to write (replaced if it exists)
  std::string type;    // Q8_0, Q4_0, Q5_0, Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K, Q4_1, Q5_1 (any case)
  int threads = 0;     // 0: physical cores
  bool leave_output = false;  // keep output.weight in its source type (llama.cpp's --leave-output-tensor)
};

struct QuantizeResult {
  std::string type;                  // canonical name of the file type
  uint64_t bytes = 0;                // size of the written file
  int tensors = 0;
  std::map<std::string, int> types;  // tensor count per ggml type
};

// The file types quantize accepts, for messages: "Q8_0, Q4_0, ...".
std::string quantize_type_names();

// PROGRESS gets a fraction in [0, 1] from the working thread. Throws ilm::Error with a clear
// message for an unknown type, an unsupported source or an unwritable output.
QuantizeResult quantize_model(const QuantizeOptions& options, const std::function<void(double)>& progress);

}  // namespace ilm::quant
