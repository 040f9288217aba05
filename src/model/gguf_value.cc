// GGUF metadata values: typed access with errors that name the key, and the short text form
// `longsparse info` prints.
#include <fmt/format.h>

#include <bit>
#include <limits>

#include "core/error.h"
#include "model/gguf.h"

namespace ls {
namespace {

std::string key_label(std::string_view key) {
  return key.empty() ? std::string("metadata value") : fmt::format("metadata key '{}'", key);
}

bool is_unsigned(GgufValue::Type t) {
  using T = GgufValue::Type;
  return t == T::U8 || t == T::U16 || t == T::U32 || t == T::U64;
}
bool is_signed(GgufValue::Type t) {
  using T = GgufValue::Type;
  return t == T::I8 || t == T::I16 || t == T::I32 || t == T::I64;
}

// Cuts `s` to at most `limit` bytes without splitting a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view s, std::size_t limit) {
  if (s.size() <= limit) return s;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

std::string quote(std::string_view s, std::size_t limit) {
  std::string_view shown = utf8_prefix(s, limit);
  std::string out = "\"";
  for (char c : shown) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  out += '"';
  if (shown.size() < s.size()) out += fmt::format("… ({} bytes)", s.size());
  return out;
}

std::string format_value(const GgufValue& v, std::size_t max_items, bool nested) {
  using T = GgufValue::Type;
  switch (v.type) {
    case T::Bool:
      return std::get<bool>(v.value) ? "true" : "false";
    case T::F32:
      return fmt::format("{}", static_cast<float>(std::get<double>(v.value)));
    case T::F64:
      return fmt::format("{}", std::get<double>(v.value));
    case T::String:
      return quote(std::get<std::string>(v.value), nested ? 40 : 120);
    case T::Array: {
      const GgufArray& items = std::get<GgufArray>(v.value);
      std::string out = "[";
      const std::size_t shown = std::min(items.size(), max_items);
      for (std::size_t i = 0; i < shown; ++i) {
        if (i) out += ", ";
        out += format_value(items[i], max_items, true);
      }
      if (shown < items.size()) out += shown ? ", …" : "…";
      out += "]";
      if (shown < items.size()) {
        out += fmt::format(" ({} × {})", items.size(), gguf_type_name(v.element_type));
      }
      return out;
    }
    default:
      if (is_unsigned(v.type)) return fmt::format("{}", std::get<std::uint64_t>(v.value));
      return fmt::format("{}", std::get<std::int64_t>(v.value));
  }
}

}  // namespace

std::string_view gguf_type_name(GgufValue::Type type) {
  static constexpr std::string_view kNames[] = {"u8",  "i8",     "u16",   "i16", "u32",
                                                "i32", "f32",    "bool",  "string",
                                                "array", "u64",  "i64",   "f64"};
  const auto index = static_cast<std::uint32_t>(type);
  return index < std::size(kNames) ? kNames[index] : std::string_view("unknown");
}

std::int64_t GgufValue::as_int(std::string_view key) const {
  if (is_signed(type)) return std::get<std::int64_t>(value);
  if (is_unsigned(type)) {
    const std::uint64_t u = std::get<std::uint64_t>(value);
    LS_CHECK(u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
             "{} holds {}, too large for a signed 64-bit integer", key_label(key), u);
    return static_cast<std::int64_t>(u);
  }
  fail("{} is a {}, not an integer", key_label(key), gguf_type_name(type));
}

double GgufValue::as_float(std::string_view key) const {
  if (type == Type::F32 || type == Type::F64) return std::get<double>(value);
  if (is_signed(type)) return static_cast<double>(std::get<std::int64_t>(value));
  if (is_unsigned(type)) return static_cast<double>(std::get<std::uint64_t>(value));
  fail("{} is a {}, not a number", key_label(key), gguf_type_name(type));
}

bool GgufValue::as_bool(std::string_view key) const {
  LS_CHECK(type == Type::Bool, "{} is a {}, not a bool", key_label(key), gguf_type_name(type));
  return std::get<bool>(value);
}

const std::string& GgufValue::as_string(std::string_view key) const {
  LS_CHECK(type == Type::String, "{} is a {}, not a string", key_label(key),
           gguf_type_name(type));
  return std::get<std::string>(value);
}

const GgufArray& GgufValue::as_array(std::string_view key) const {
  LS_CHECK(type == Type::Array, "{} is a {}, not an array", key_label(key),
           gguf_type_name(type));
  return std::get<GgufArray>(value);
}

std::size_t GgufArray::size() const {
  switch (element_type) {
    case GgufType::String: return ends_.size();
    case GgufType::Array: return arrays_.size();
    default: return scalars_.size();
  }
}

GgufValue GgufArray::operator[](std::size_t i) const {
  GgufValue v;
  v.type = element_type;
  switch (element_type) {
    case GgufType::String: {
      const std::uint64_t begin = i ? ends_[i - 1] : 0;
      v.value = chars_.substr(begin, ends_[i] - begin);
      break;
    }
    case GgufType::Array: return arrays_[i];
    case GgufType::Bool: v.value = scalars_[i] != 0; break;
    case GgufType::F32:
    case GgufType::F64: v.value = std::bit_cast<double>(scalars_[i]); break;
    default:
      if (is_signed(element_type)) {
        v.value = static_cast<std::int64_t>(scalars_[i]);
      } else {
        v.value = scalars_[i];
      }
  }
  return v;
}

GgufValue GgufArray::Iterator::operator*() const { return (*array_)[i_]; }

void GgufArray::push_back(GgufValue v) {
  LS_CHECK(v.type == element_type, "an array of {} cannot hold a {}", gguf_type_name(element_type),
           gguf_type_name(v.type));
  switch (element_type) {
    case GgufType::String:
      chars_ += std::get<std::string>(v.value);
      ends_.push_back(chars_.size());
      break;
    case GgufType::Array: arrays_.push_back(std::move(v)); break;
    case GgufType::Bool: scalars_.push_back(std::get<bool>(v.value) ? 1 : 0); break;
    case GgufType::F32:
    case GgufType::F64: scalars_.push_back(std::bit_cast<std::uint64_t>(std::get<double>(v.value))); break;
    default:
      scalars_.push_back(is_signed(element_type) ? static_cast<std::uint64_t>(std::get<std::int64_t>(v.value))
                                                 : std::get<std::uint64_t>(v.value));
  }
}

void GgufArray::reserve(std::size_t n) {
  switch (element_type) {
    case GgufType::String: ends_.reserve(n); break;
    case GgufType::Array: arrays_.reserve(n); break;
    default: scalars_.reserve(n);
  }
}

std::string GgufValue::to_string(std::size_t max_items) const {
  return format_value(*this, max_items, false);
}

}  // namespace ls
