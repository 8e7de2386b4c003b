#pragma once
// A small strict JSON parser (RFC 8259) for the model's side files: config.json,
// model.safetensors.index.json, tokenizer_config.json and safetensors headers. Depth and size are
// bounded so that a hostile file cannot exhaust the stack or the heap.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ilm {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  // WHAT names the source in errors ("config.json"). Throws ilm::Error with the line and column
  // of the first problem. Duplicate object keys are rejected.
  static Json parse(std::string_view text, const std::string& what);

  static constexpr size_t kMaxDepth = 64;
  // A node costs ~100 bytes of heap while "0," costs 2 bytes of input: the budget caps the blowup.
  static constexpr size_t kMaxNodes = size_t(1) << 20;

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Accessors assume the matching type; callers check first.
  bool boolean() const { return bool_; }
  double number() const { return number_; }
  const std::string& str() const { return str_; }
  const std::vector<Json>& items() const { return items_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }

  // Member of an object, or nullptr (also for non-objects).
  const Json* find(std::string_view key) const;
  // The number as an exact non-negative integer; false for fractions, exponents, negatives and
  // values beyond uint64 (the digits are re-read, so integers above 2^53 stay exact).
  bool to_u64(uint64_t* out) const;


 private:
  friend class JsonParser;
  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0;
  std::string str_;  // the string, or a number's literal text
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

}  // namespace ilm
