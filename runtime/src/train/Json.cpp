//===- Json.cpp - the little JSON the trainer reads and writes ------------===//
//
// Part of weipipe's runtime.
//
//===----------------------------------------------------------------------===//

#include "weipipe/runtime/train/Json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace weipipe::rt::train;

std::string json::quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\r':
      out += "\\r";
      break;
    case '\t':
      out += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", unsigned(c));
        out += buf;
      } else {
        out += c;
      }
    }
  }
  out += '"';
  return out;
}

std::string json::number(double v) {
  if (std::isnan(v))
    return "NaN";
  if (std::isinf(v))
    return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos)
    s += ".0";
  return s;
}

const json::Value *json::Value::get(std::string_view key) const {
  for (const auto &kv : object)
    if (kv.first == key)
      return &kv.second;
  return nullptr;
}

std::optional<uint64_t> json::Value::asUint64() const {
  if (kind != Kind::Number || text.empty())
    return std::nullopt;
  uint64_t v = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size())
    return std::nullopt;
  return v;
}

std::optional<double> json::Value::asDouble() const {
  if (kind != Kind::Number)
    return std::nullopt;
  return std::strtod(text.c_str(), nullptr);
}

namespace {
class Parser {
public:
  Parser(std::string_view t, std::string *e) : t_(t), error_(e) {}

  std::optional<json::Value> document() {
    json::Value v;
    skipSpace();
    if (!value(v, 0))
      return std::nullopt;
    skipSpace();
    if (i_ != t_.size())
      return fail("trailing characters after the JSON value");
    return v;
  }

private:
  static constexpr int kMaxDepth = 64;

  std::nullopt_t fail(const std::string &m) {
    if (error_->empty())
      *error_ = m + " at byte " + std::to_string(i_);
    return std::nullopt;
  }
  bool failed(const std::string &m) {
    fail(m);
    return false;
  }
  void skipSpace() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' ||
                              t_[i_] == '\n' || t_[i_] == '\r'))
      ++i_;
  }
  bool literal(std::string_view w) {
    if (t_.substr(i_, w.size()) != w)
      return failed("invalid literal");
    i_ += w.size();
    return true;
  }

  bool value(json::Value &v, int depth) {
    if (depth > kMaxDepth)
      return failed("JSON nested too deeply");
    if (i_ >= t_.size())
      return failed("unexpected end of JSON");
    const char c = t_[i_];
    if (c == '{')
      return object(v, depth);
    if (c == '[')
      return array(v, depth);
    if (c == '"') {
      v.kind = json::Value::Kind::String;
      return string(v.text);
    }
    if (c == 't' || c == 'f') {
      v.kind = json::Value::Kind::Bool;
      v.boolean = c == 't';
      return literal(c == 't' ? "true" : "false");
    }
    if (c == 'n') {
      v.kind = json::Value::Kind::Null;
      return literal("null");
    }
    if (c == '-' || (c >= '0' && c <= '9'))
      return number(v);
    return failed(std::string("unexpected character '") + c + "'");
  }

  bool object(json::Value &v, int depth) {
    v.kind = json::Value::Kind::Object;
    ++i_;
    skipSpace();
    if (i_ < t_.size() && t_[i_] == '}') {
      ++i_;
      return true;
    }
    while (true) {
      skipSpace();
      if (i_ >= t_.size() || t_[i_] != '"')
        return failed("expected a string key");
      std::string key;
      if (!string(key))
        return false;
      if (v.get(key))
        return failed("duplicate key " + json::quote(key));
      skipSpace();
      if (i_ >= t_.size() || t_[i_] != ':')
        return failed("expected ':'");
      ++i_;
      skipSpace();
      json::Value member;
      if (!value(member, depth + 1))
        return false;
      v.object.emplace_back(std::move(key), std::move(member));
      skipSpace();
      if (i_ < t_.size() && t_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < t_.size() && t_[i_] == '}') {
        ++i_;
        return true;
      }
      return failed("expected ',' or '}'");
    }
  }

  bool array(json::Value &v, int depth) {
    v.kind = json::Value::Kind::Array;
    ++i_;
    skipSpace();
    if (i_ < t_.size() && t_[i_] == ']') {
      ++i_;
      return true;
    }
    while (true) {
      skipSpace();
      json::Value e;
      if (!value(e, depth + 1))
        return false;
      v.array.push_back(std::move(e));
      skipSpace();
      if (i_ < t_.size() && t_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < t_.size() && t_[i_] == ']') {
        ++i_;
        return true;
      }
      return failed("expected ',' or ']'");
    }
  }

  bool number(json::Value &v) {
    const size_t start = i_;
    auto digits = [&] {
      size_t s = i_;
      while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9')
        ++i_;
      return i_ > s;
    };
    if (t_[i_] == '-')
      ++i_;
    if (i_ < t_.size() && t_[i_] == '0')
      ++i_;
    else if (!digits())
      return failed("invalid number");
    if (i_ < t_.size() && t_[i_] == '.') {
      ++i_;
      if (!digits())
        return failed("invalid number");
    }
    if (i_ < t_.size() && (t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
      if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-'))
        ++i_;
      if (!digits())
        return failed("invalid number");
    }
    v.kind = json::Value::Kind::Number;
    v.text = std::string(t_.substr(start, i_ - start));
    return true;
  }

  bool hex4(unsigned &u) {
    if (i_ + 4 > t_.size())
      return failed("truncated \\u escape");
    u = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = t_[i_++];
      u <<= 4;
      if (h >= '0' && h <= '9')
        u |= unsigned(h - '0');
      else if (h >= 'a' && h <= 'f')
        u |= unsigned(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        u |= unsigned(h - 'A' + 10);
      else
        return failed("invalid \\u escape");
    }
    return true;
  }

  static void appendUtf8(std::string &s, unsigned cp) {
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += char(0xE0 | (cp >> 12));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    } else {
      s += char(0xF0 | (cp >> 18));
      s += char(0x80 | ((cp >> 12) & 0x3F));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    }
  }

  bool string(std::string &out) {
    ++i_; // the opening quote
    while (true) {
      if (i_ >= t_.size())
        return failed("unterminated string");
      const char c = t_[i_++];
      if (c == '"')
        return true;
      if (static_cast<unsigned char>(c) < 0x20)
        return failed("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= t_.size())
        return failed("unterminated string");
      const char e = t_[i_++];
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        unsigned cp;
        if (!hex4(cp))
          return false;
        if (cp >= 0xD800 && cp < 0xDC00) { // a surrogate pair
          unsigned lo;
          if (t_.substr(i_, 2) != "\\u")
            return failed("unpaired surrogate");
          i_ += 2;
          if (!hex4(lo))
            return false;
          if (lo < 0xDC00 || lo >= 0xE000)
            return failed("unpaired surrogate");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return failed("unpaired surrogate");
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        return failed("invalid escape");
      }
    }
  }

  std::string_view t_;
  size_t i_ = 0;
  std::string *error_;
};
} // namespace

std::optional<json::Value> json::parse(std::string_view text,
                                       std::string *error) {
  std::string e;
  Parser p(text, &e);
  auto v = p.document();
  if (!v)
    *error = e;
  return v;
}
