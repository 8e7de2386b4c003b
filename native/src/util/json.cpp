#include "util/json.h"

#include <cstdlib>
#include <unordered_set>

#include "util/error.h"

namespace ilm {

class JsonParser {
 public:
  JsonParser(std::string_view text, const std::string& what) : s_(text), what_(what) {}

  Json parse_document() {
    skip_ws();
    Json v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected data after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); i++) {
      if (s_[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    throw Error(what_ + ": invalid JSON at line " + std::to_string(line) + ", column " +
                std::to_string(col) + " (byte " + std::to_string(pos_) + "): " + msg);
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  void skip_ws() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      pos_++;
  }

  void expect_word(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) fail("unexpected character");
    pos_ += word.size();
  }

  Json parse_value(size_t depth) {
    if (depth >= Json::kMaxDepth) fail("nesting deeper than " + std::to_string(Json::kMaxDepth));
    if (++nodes_ > Json::kMaxNodes) fail("more than " + std::to_string(Json::kMaxNodes) + " values");
    Json v;
    switch (peek()) {
      case '{': parse_object(v, depth); break;
      case '[': parse_array(v, depth); break;
      case '"':
        v.type_ = Json::Type::String;
        v.str_ = parse_string();
        break;
      case 't':
        expect_word("true");
        v.type_ = Json::Type::Bool;
        v.bool_ = true;
        break;
      case 'f':
        expect_word("false");
        v.type_ = Json::Type::Bool;
        break;
      case 'n': expect_word("null"); break;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          parse_number(v);
        } else if (at_end()) {
          fail("unexpected end of input");
        } else {
          fail("unexpected character");
        }
    }
    return v;
  }

  void parse_object(Json& v, size_t depth) {
    v.type_ = Json::Type::Object;
    pos_++;  // '{'
    skip_ws();
    if (peek() == '}') {
      pos_++;
      return;
    }
    std::unordered_set<std::string> seen;
    for (;;) {
      skip_ws();
      if (peek() != '"') fail(at_end() ? "unexpected end of input" : "expected a string key");
      const size_t key_pos = pos_;
      std::string key = parse_string();
      if (!seen.insert(key).second) {
        pos_ = key_pos;
        fail("duplicate key \"" + key + "\"");
      }
      skip_ws();
      if (peek() != ':') fail("expected ':'");
      pos_++;
      skip_ws();
      Json member = parse_value(depth + 1);
      v.members_.emplace_back(std::move(key), std::move(member));
      skip_ws();
      if (peek() == ',') {
        pos_++;
      } else if (peek() == '}') {
        pos_++;
        return;
      } else {
        fail(at_end() ? "unexpected end of input" : "expected ',' or '}'");
      }
    }
  }

  void parse_array(Json& v, size_t depth) {
    v.type_ = Json::Type::Array;
    pos_++;  // '['
    skip_ws();
    if (peek() == ']') {
      pos_++;
      return;
    }
    for (;;) {
      skip_ws();
      v.items_.push_back(parse_value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        pos_++;
      } else if (peek() == ']') {
        pos_++;
        return;
      } else {
        fail(at_end() ? "unexpected end of input" : "expected ',' or ']'");
      }
    }
  }

  void parse_number(Json& v) {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') pos_++;
      return pos_ - from;
    };
    if (peek() == '-') pos_++;
    if (peek() == '0') {
      pos_++;
    } else if (digits() == 0) {
      fail("invalid number");
    }
    if (peek() == '.') {
      pos_++;
      if (digits() == 0) fail("invalid number: digits expected after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      pos_++;
      if (peek() == '+' || peek() == '-') pos_++;
      if (digits() == 0) fail("invalid number: digits expected in the exponent");
    }
    v.type_ = Json::Type::Number;
    v.str_ = std::string(s_.substr(start, pos_ - start));
    v.number_ = std::strtod(v.str_.c_str(), nullptr);
  }

  unsigned hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned cp = 0;
    for (int i = 0; i < 4; i++) {
      const char c = s_[pos_++];
      cp <<= 4;
      if (c >= '0' && c <= '9') cp |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') cp |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') cp |= unsigned(c - 'A' + 10);
      else fail("invalid \\u escape");
    }
    return cp;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    pos_++;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        pos_++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c != '\\') {
        out += char(c);
        pos_++;
        continue;
      }
      pos_++;
      if (at_end()) fail("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") fail("unpaired surrogate in \\u escape");
            pos_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("unpaired surrogate in \\u escape");
          }
          put_utf8(out, cp);
          break;
        }
        default: pos_--; fail("invalid escape");
      }
    }
  }

  std::string_view s_;
  const std::string& what_;
  size_t pos_ = 0;
  size_t nodes_ = 0;
};

Json Json::parse(std::string_view text, const std::string& what) {
  return JsonParser(text, what).parse_document();
}

const Json* Json::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  for (const auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

bool Json::to_u64(uint64_t* out) const {
  if (type_ != Type::Number || str_.empty()) return false;
  uint64_t v = 0;
  for (char c : str_) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

}  // namespace ilm
