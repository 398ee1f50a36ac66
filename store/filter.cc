#include "store/filter.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "re2/re2.h"
#include "store/limits.h"

namespace imaged::store {
namespace {

// The scanner works on runes the way containerd's Go scanner does, because
// which byte sequences are accepted (and where errors are reported) must agree
// with containerd for clients to see the same behaviour from both servers.

// Pseudo-runes; negative so they cannot collide with code points.
constexpr int32_t kEof = -1;
constexpr int32_t kIllegal = -2;
constexpr int32_t kRuneError = 0xFFFD;
constexpr int32_t kMaxRune = 0x10FFFF;

// Go's one-character escapes (\a \b \f \n \r \t \v \\): what escape `e`
// (a rune) stands for, or nothing when it is not one of them.
std::optional<char> SimpleEscape(int32_t e) {
  constexpr absl::string_view kNames = "abfnrtv\\";
  constexpr absl::string_view kValues = "\a\b\f\n\r\t\v\\";
  static_assert(kNames.size() == kValues.size());
  const size_t at = e >= 0 && e < 0x80 ? kNames.find(static_cast<char>(e)) : absl::string_view::npos;
  if (at == absl::string_view::npos) return std::nullopt;
  return kValues[at];
}

struct DecodedRune {
  int32_t rune;
  int width;
};

// Go's utf8.DecodeRuneInString: malformed or truncated input decodes as
// U+FFFD of width 1, so the caller can tell it from end of input (width 0).
DecodedRune DecodeRune(absl::string_view s) {
  if (s.empty()) return {kRuneError, 0};
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return {b0, 1};
  int width;
  int32_t rune;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    width = 2;
    rune = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    width = 3;
    rune = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    width = 4;
    rune = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // beyond U+10FFFF
  } else {
    return {kRuneError, 1};
  }
  if (s.size() < static_cast<size_t>(width)) return {kRuneError, 1};
  for (int i = 1; i < width; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < lo || b > hi) return {kRuneError, 1};
    lo = 0x80;
    hi = 0xBF;
    rune = (rune << 6) | (b & 0x3F);
  }
  return {rune, width};
}

// Go's utf8.EncodeRune: unencodable values (surrogates, out of range) become
// U+FFFD rather than failing, which is what `\uD800` unquotes to upstream.
void AppendRune(int32_t r, std::string* out) {
  if (r < 0 || r > kMaxRune || (r >= 0xD800 && r <= 0xDFFF)) r = kRuneError;
  if (r < 0x80) {
    out->push_back(static_cast<char>(r));
  } else if (r < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (r >> 6)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else if (r < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (r >> 12)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (r >> 18)));
    out->push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  }
}

// Go's unicode.IsSpace (Latin-1 spaces plus the White_Space property).
bool IsSpace(int32_t r) {
  switch (r) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return r >= 0x2000 && r <= 0x200A;
  }
}

bool IsFieldRune(int32_t r) {
  return r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') ||
         (r >= '0' && r <= '9');
}

bool IsOperatorRune(int32_t r) { return r == '=' || r == '!' || r == '~'; }

// Single quotes are deliberately absent: upstream's scanner never treats them
// as quotes, so 'x' is an ordinary unquoted value including the quotes.
bool IsQuoteRune(int32_t r) { return r == '/' || r == '|' || r == '"'; }

bool IsSeparatorRune(int32_t r) { return r == ',' || r == '.'; }

// Go's unicode.IsGraphic minus spaces: letters, marks, numbers, punctuation
// and symbols. RE2 carries the Unicode tables, which saves shipping our own.
bool IsGraphicNonAscii(int32_t r) {
  static const RE2* const kGraphic =
      new RE2("[\\p{L}\\p{M}\\p{N}\\p{P}\\p{S}]");
  std::string utf8;
  AppendRune(r, &utf8);
  return RE2::FullMatch(utf8, *kGraphic);
}

bool IsValueRune(int32_t r) {
  if (r < 0 || r == ',' || IsSpace(r)) return false;
  if (r < 0x80) return r > 0x20 && r < 0x7F;
  return IsGraphicNonAscii(r);
}

int DigitValue(int32_t r) {
  if (r >= '0' && r <= '9') return r - '0';
  if (r >= 'a' && r <= 'f') return r - 'a' + 10;
  if (r >= 'A' && r <= 'F') return r - 'A' + 10;
  return 16;  // larger than any base we use
}

std::string DescribeRune(int32_t r) {
  std::string utf8;
  AppendRune(r, &utf8);
  return absl::StrCat("\"", absl::Utf8SafeCHexEscape(utf8), "\"");
}

enum class TokenKind {
  kEof,
  kQuoted,
  kValue,
  kField,
  kSeparator,
  kOperator,
  kIllegal,
  kOther,
};

struct Token {
  TokenKind kind;
  size_t pos;
  absl::string_view text;
};

class Scanner {
 public:
  explicit Scanner(absl::string_view input) : input_(input) {}

  // The next rune without consuming it (and without skipping whitespace,
  // which is why upstream rejects whitespace after a complete selector).
  int32_t Peek() {
    const size_t pos = pos_;
    const size_t next = next_;
    const int32_t r = Next();
    pos_ = pos;
    next_ = next;
    return r;
  }

  Token Scan();

  // Byte offset just past the last consumed rune.
  size_t offset() const { return next_; }

  // Why the last kIllegal token (or rune) was illegal.
  const std::string& error() const { return error_; }

 private:
  int32_t Next();
  bool ScanQuoted(int32_t quote);
  bool ScanEscape(int32_t quote, int32_t* ch);
  bool ScanDigits(int32_t ch, int base, int n, int32_t* out);

  // Keeps the first error of a token: an illegal escape inside an
  // unterminated literal is the more useful thing to report.
  void SetError(absl::string_view msg) {
    if (error_.empty()) error_ = std::string(msg);
  }

  absl::string_view input_;
  size_t pos_ = 0;   // start of the last rune read
  size_t next_ = 0;  // end of the last rune read
  bool value_mode_ = false;  // right after an operator, runs scan as values
  std::string error_;
};

int32_t Scanner::Next() {
  if (pos_ >= input_.size()) return kEof;
  pos_ = next_;
  const DecodedRune d = DecodeRune(input_.substr(next_));
  next_ += d.width;
  if (d.rune == kRuneError) {
    if (d.width == 0) return kEof;
    SetError("invalid UTF-8 (or U+FFFD)");
    return kIllegal;
  }
  if (d.rune == 0) {
    SetError("unexpected NUL byte");
    return kIllegal;
  }
  return d.rune;
}

Token Scanner::Scan() {
  error_.clear();
  int32_t ch = Next();
  while (IsSpace(ch)) ch = Next();
  const size_t pos = pos_;
  auto text = [&] { return input_.substr(pos, next_ - pos); };

  if (ch == kEof) return {TokenKind::kEof, pos, {}};
  if (ch == kIllegal) return {TokenKind::kIllegal, pos, {}};
  if (IsQuoteRune(ch)) {
    const bool ok = ScanQuoted(ch);
    return {ok ? TokenKind::kQuoted : TokenKind::kIllegal, pos, text()};
  }
  if (IsSeparatorRune(ch)) {
    value_mode_ = false;
    return {TokenKind::kSeparator, pos, text()};
  }
  if (IsOperatorRune(ch)) {
    while (IsOperatorRune(Peek())) Next();
    value_mode_ = true;
    return {TokenKind::kOperator, pos, text()};
  }
  if (value_mode_) {
    // Upstream takes the first rune unchecked; only the rest must be
    // value runes.
    while (IsValueRune(Peek())) Next();
    value_mode_ = false;
    return {TokenKind::kValue, pos, text()};
  }
  if (IsFieldRune(ch)) {
    while (IsFieldRune(Peek())) Next();
    return {TokenKind::kField, pos, text()};
  }
  return {TokenKind::kOther, pos, text()};
}

bool Scanner::ScanQuoted(int32_t quote) {
  bool legal = true;
  int32_t ch = Next();
  while (ch != quote) {
    if (ch == '\n' || ch < 0) {
      SetError("quoted literal not terminated");
      return false;
    }
    if (ch == '\\') {
      if (!ScanEscape(quote, &ch)) legal = false;
    } else {
      ch = Next();
    }
  }
  return legal;
}

// Consumes an escape after its backslash; *ch receives the rune after it.
bool Scanner::ScanEscape(int32_t quote, int32_t* ch) {
  const int32_t c = Next();
  if (SimpleEscape(c)) {
    *ch = Next();
    return true;
  }
  switch (c) {
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
      return ScanDigits(c, 8, 3, ch);
    case 'x':
      return ScanDigits(Next(), 16, 2, ch);
    case 'u':
      return ScanDigits(Next(), 16, 4, ch);
    case 'U':
      return ScanDigits(Next(), 16, 8, ch);
    default:
      if (c == quote) {
        *ch = Next();
        return true;
      }
      *ch = c;
      SetError("illegal escape sequence");
      return false;
  }
}

bool Scanner::ScanDigits(int32_t ch, int base, int n, int32_t* out) {
  while (n > 0 && DigitValue(ch) < base) {
    ch = Next();
    --n;
  }
  *out = ch;
  if (n > 0) {
    SetError("illegal numeric escape sequence");
    return false;
  }
  return true;
}

// Decodes a quoted token the scanner accepted (so it is valid UTF-8, closed,
// and uses only known escapes). Fails only on numeric escapes out of range,
// which the scanner does not check.
std::optional<std::string> Unquote(absl::string_view quoted) {
  const char quote = quoted.front();
  absl::string_view s = quoted.substr(1, quoted.size() - 2);
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const char c = s.front();
    if (c == quote) return std::nullopt;
    if (c != '\\') {
      out.push_back(c);
      s.remove_prefix(1);
      continue;
    }
    if (s.size() < 2) return std::nullopt;
    const char e = s[1];
    s.remove_prefix(2);
    if (std::optional<char> simple = SimpleEscape(e)) {
      out.push_back(*simple);
      continue;
    }
    switch (e) {
      case 'x':
      case 'u':
      case 'U': {
        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        if (s.size() < n) return std::nullopt;
        int64_t v = 0;
        for (size_t i = 0; i < n; ++i) {
          const int d = DigitValue(static_cast<unsigned char>(s[i]));
          if (d >= 16) return std::nullopt;
          v = (v << 4) | d;
        }
        s.remove_prefix(n);
        if (e == 'x') {
          // A raw byte, possibly not UTF-8, exactly as Go's \x.
          out.push_back(static_cast<char>(v));
        } else {
          if (v > kMaxRune) return std::nullopt;
          AppendRune(static_cast<int32_t>(v), &out);
        }
        break;
      }
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7': {
        if (s.size() < 2) return std::nullopt;
        int v = e - '0';
        for (int i = 0; i < 2; ++i) {
          const int d = s[i] - '0';
          if (d < 0 || d > 7) return std::nullopt;
          v = (v << 3) | d;
        }
        s.remove_prefix(2);
        if (v > 255) return std::nullopt;
        out.push_back(static_cast<char>(v));
        break;
      }
      case '\'':
      case '"':
      case '|':
      case '/':
        if (e != quote) return std::nullopt;
        out.push_back(e);
        break;
      default:
        return std::nullopt;
    }
  }
  return out;
}

using Selector = Filter::Selector;
using Op = Filter::Op;

class Parser {
 public:
  explicit Parser(absl::string_view input) : input_(input), scanner_(input) {}

  absl::StatusOr<std::vector<Selector>> Parse();

 private:
  absl::Status Error(size_t pos, absl::string_view problem) const {
    return absl::InvalidArgumentError(
        absl::StrCat("filter \"", absl::Utf8SafeCHexEscape(input_), "\": ",
                     problem, " at ", pos));
  }

  absl::StatusOr<Selector> ParseSelector();
  absl::StatusOr<std::vector<std::string>> ParseFieldpath();
  absl::StatusOr<std::string> ParseField();
  absl::StatusOr<Op> ParseOperator();
  absl::StatusOr<std::string> ParseValue(bool regexp_quotes, size_t* pos);
  absl::StatusOr<std::string> ParseQuoted(const Token& token,
                                          bool regexp_quotes);

  absl::string_view input_;
  Scanner scanner_;
};

absl::StatusOr<std::vector<Selector>> Parser::Parse() {
  std::vector<Selector> selectors;
  while (true) {
    absl::StatusOr<Selector> selector = ParseSelector();
    if (!selector.ok()) return selector.status();
    selectors.push_back(*std::move(selector));

    const int32_t r = scanner_.Peek();
    if (r == kEof) return selectors;
    if (r == kIllegal) return Error(scanner_.offset(), scanner_.error());
    if (r != ',') {
      return Error(scanner_.offset(),
                   absl::StrCat("unexpected ", DescribeRune(r)));
    }
    scanner_.Scan();  // the ','
  }
}

absl::StatusOr<Selector> Parser::ParseSelector() {
  Selector selector;
  absl::StatusOr<std::vector<std::string>> fieldpath = ParseFieldpath();
  if (!fieldpath.ok()) return fieldpath.status();
  selector.fieldpath = *std::move(fieldpath);

  const int32_t r = scanner_.Peek();
  if (r == ',' || r == kEof) return selector;  // bare fieldpath: presence

  absl::StatusOr<Op> op = ParseOperator();
  if (!op.ok()) return op.status();
  selector.op = *op;

  size_t value_pos = 0;
  absl::StatusOr<std::string> value =
      ParseValue(selector.op == Op::kMatches, &value_pos);
  if (!value.ok()) return value.status();
  selector.value = *std::move(value);

  if (selector.op == Op::kMatches) {
    // Compiled here rather than lazily (as upstream does) so that a bad
    // pattern is the client's InvalidArgument instead of a silent non-match.
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<const RE2>(selector.value, options);
    if (!re->ok()) {
      return Error(value_pos,
                   absl::StrCat("invalid regular expression \"",
                                absl::Utf8SafeCHexEscape(selector.value),
                                "\": ", re->error()));
    }
    selector.regexp = std::move(re);
  }
  return selector;
}

absl::StatusOr<std::vector<std::string>> Parser::ParseFieldpath() {
  std::vector<std::string> fieldpath;
  while (true) {
    absl::StatusOr<std::string> field = ParseField();
    if (!field.ok()) return field.status();
    fieldpath.push_back(*std::move(field));
    if (scanner_.Peek() != '.') return fieldpath;
    scanner_.Scan();  // the '.'
  }
}

absl::StatusOr<std::string> Parser::ParseField() {
  const Token token = scanner_.Scan();
  switch (token.kind) {
    case TokenKind::kField:
      return std::string(token.text);
    case TokenKind::kQuoted:
      return ParseQuoted(token, /*regexp_quotes=*/false);
    case TokenKind::kIllegal:
      return Error(token.pos, scanner_.error());
    default:
      return Error(token.pos, "field expected");
  }
}

absl::StatusOr<Op> Parser::ParseOperator() {
  const Token token = scanner_.Scan();
  switch (token.kind) {
    case TokenKind::kOperator:
      if (token.text == "==") return Op::kEqual;
      if (token.text == "!=") return Op::kNotEqual;
      if (token.text == "~=") return Op::kMatches;
      return Error(token.pos,
                   absl::StrCat("unsupported operator \"", token.text, "\""));
    case TokenKind::kIllegal:
      return Error(token.pos, scanner_.error());
    default:
      return Error(token.pos, "operator (==, != or ~=) expected");
  }
}

absl::StatusOr<std::string> Parser::ParseValue(bool regexp_quotes,
                                               size_t* pos) {
  const Token token = scanner_.Scan();
  *pos = token.pos;
  switch (token.kind) {
    case TokenKind::kValue:
    case TokenKind::kField:
      return std::string(token.text);
    case TokenKind::kQuoted:
      return ParseQuoted(token, regexp_quotes);
    case TokenKind::kIllegal:
      return Error(token.pos, scanner_.error());
    default:
      return Error(token.pos, "value expected");
  }
}

absl::StatusOr<std::string> Parser::ParseQuoted(const Token& token,
                                                bool regexp_quotes) {
  if (!regexp_quotes && token.text.front() != '"') {
    return Error(token.pos,
                 absl::StrCat("quote ", DescribeRune(token.text.front()),
                              " only allowed in ~= values"));
  }
  std::optional<std::string> unquoted = Unquote(token.text);
  if (!unquoted.has_value()) {
    return Error(token.pos, "numeric escape out of range");
  }
  return *std::move(unquoted);
}

bool MatchSelector(const Selector& selector, const FieldAdaptor& adaptor) {
  const std::optional<absl::string_view> value =
      adaptor.Field(selector.fieldpath);
  // Upstream compares an absent field as "", which is what makes `!=` (and
  // a `~=` that accepts "") true for objects lacking the field.
  const absl::string_view text = value.value_or(absl::string_view());
  switch (selector.op) {
    case Op::kPresent:
      return value.has_value();
    case Op::kEqual:
      return value.has_value() && text == selector.value;
    case Op::kNotEqual:
      return text != selector.value;
    case Op::kMatches:
      return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()),
                               *selector.regexp);
  }
  return false;
}

}  // namespace

std::optional<absl::string_view> MapField(
    absl::Span<const std::string> rest,
    const std::map<std::string, std::string>& m) {
  if (rest.empty()) return std::nullopt;
  const auto it =
      rest.size() == 1 ? m.find(rest[0]) : m.find(absl::StrJoin(rest, "."));
  if (it == m.end()) return std::nullopt;
  return absl::string_view(it->second);
}

// One empty conjunction, which is vacuously true.
Filter::Filter() : disjuncts_(1) {}

absl::StatusOr<Filter> Filter::Parse(absl::string_view s) {
  // Only the exact empty string means "everything"; whitespace alone is a
  // syntax error upstream.
  if (s.empty()) return Filter();
  absl::StatusOr<std::vector<Selector>> selectors = Parser(s).Parse();
  if (!selectors.ok()) return selectors.status();
  std::vector<std::vector<Selector>> disjuncts;
  disjuncts.push_back(*std::move(selectors));
  return Filter(std::move(disjuncts));
}

absl::StatusOr<Filter> Filter::ParseAll(
    absl::Span<const std::string> filters) {
  if (absl::Status s = ValidateFilters(filters); !s.ok()) return s;
  if (filters.empty()) return Filter();
  std::vector<std::vector<Selector>> disjuncts;
  bool matches_all = false;
  // Every filter is parsed even once one matches everything, so that a
  // malformed filter is still reported as upstream does.
  for (const std::string& s : filters) {
    absl::StatusOr<Filter> filter = Parse(s);
    if (!filter.ok()) return filter.status();
    if (filter->MatchesAll()) {
      matches_all = true;
      continue;
    }
    for (auto& conjunction : filter->disjuncts_) {
      disjuncts.push_back(std::move(conjunction));
    }
  }
  if (matches_all) return Filter();
  return Filter(std::move(disjuncts));
}

bool Filter::Match(const FieldAdaptor& adaptor) const {
  for (const std::vector<Selector>& conjunction : disjuncts_) {
    bool all = true;
    for (const Selector& selector : conjunction) {
      if (!MatchSelector(selector, adaptor)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

bool Filter::MatchesAll() const {
  for (const std::vector<Selector>& conjunction : disjuncts_) {
    if (conjunction.empty()) return true;
  }
  return false;
}

}  // namespace imaged::store
