#include "runtime/protocol.h"

#include <algorithm>

namespace nubo::runtime::protocol {

void putU32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out.append(b, 4);
}

uint32_t readU32(const char* p) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

namespace {

bool knownType(uint8_t t) {
  switch (static_cast<FrameType>(t)) {
    case FrameType::kHello:
    case FrameType::kSpecialize:
    case FrameType::kReady:
    case FrameType::kRequest:
    case FrameType::kData:
    case FrameType::kResponse:
    case FrameType::kCancel:
    case FrameType::kError:
    case FrameType::kWindow:
    case FrameType::kWaitUntilCount:
      return true;
  }
  return false;
}

void putU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void putStr16(std::string& out, std::string_view s) {
  putU16(out, static_cast<uint16_t>(std::min<size_t>(s.size(), 0xffff)));
  out.append(s.substr(0, 0xffff));
}

void putStr32(std::string& out, std::string_view s) {
  putU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Bounds-checked reading of a head.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool u16(uint16_t* v) {
    if (s_.size() < 2) return false;
    *v = static_cast<uint16_t>((static_cast<uint8_t>(s_[0]) << 8) | static_cast<uint8_t>(s_[1]));
    s_.remove_prefix(2);
    return true;
  }
  bool u32(uint32_t* v) {
    if (s_.size() < 4) return false;
    *v = readU32(s_.data());
    s_.remove_prefix(4);
    return true;
  }
  bool bytes(size_t n, std::string_view* out) {
    if (s_.size() < n) return false;
    *out = s_.substr(0, n);
    s_.remove_prefix(n);
    return true;
  }
  bool empty() const { return s_.empty(); }

 private:
  std::string_view s_;
};

}  // namespace

void appendRequestHead(std::string& out, std::string_view method, std::string_view path, std::string_view url,
                       std::string_view request_id, const HeaderList& headers) {
  putStr16(out, method);
  putStr16(out, path);
  putStr16(out, url);
  putStr16(out, request_id);
  putU16(out, static_cast<uint16_t>(std::min<size_t>(headers.size(), 0xffff)));
  for (size_t i = 0; i < headers.size() && i < 0xffff; ++i) {
    putStr16(out, headers[i].first);
    putStr32(out, headers[i].second);
  }
}

void appendResponseHead(std::string& out, int status, const HeaderList& headers) {
  putU16(out, static_cast<uint16_t>(status));
  putU16(out, static_cast<uint16_t>(std::min<size_t>(headers.size(), 0xffff)));
  for (size_t i = 0; i < headers.size() && i < 0xffff; ++i) {
    putStr16(out, headers[i].first);
    putStr32(out, headers[i].second);
  }
}

namespace {
// `count` x (str16 name, str32 value), as both heads end.
Status readHeaders(Reader& r, uint16_t count, std::vector<std::pair<std::string, std::string>>* out,
                   const char* what) {
  out->clear();
  out->reserve(count);
  for (uint16_t i = 0; i < count; ++i) {
    uint16_t nl = 0;
    uint32_t vl = 0;
    std::string_view name, value;
    if (!r.u16(&nl) || !r.bytes(nl, &name) || !r.u32(&vl) || !r.bytes(vl, &value)) {
      return InvalidArgument(std::string(what) + " header " + std::to_string(i) + " is truncated");
    }
    out->emplace_back(std::string(name), std::string(value));
  }
  if (!r.empty()) return InvalidArgument(std::string(what) + " has trailing bytes");
  return Status::Ok();
}
}  // namespace

Status parseRequestHead(std::string_view head, RequestHead* out) {
  Reader r(head);
  std::string_view parts[4];
  for (auto& p : parts) {
    uint16_t n = 0;
    if (!r.u16(&n) || !r.bytes(n, &p)) return InvalidArgument("request head too short");
  }
  out->method = parts[0];
  out->path = parts[1];
  out->url = parts[2];
  out->request_id = parts[3];
  uint16_t count = 0;
  if (!r.u16(&count)) return InvalidArgument("request head too short");
  return readHeaders(r, count, &out->headers, "request head");
}

Status parseResponseHead(std::string_view head, ResponseHead* out) {
  Reader r(head);
  uint16_t status = 0, count = 0;
  if (!r.u16(&status) || !r.u16(&count)) return InvalidArgument("response head too short");
  out->status = status;
  return readHeaders(r, count, &out->headers, "response head");
}

void appendFrame(std::string& out, FrameType type, uint8_t flags, uint32_t stream, std::string_view payload) {
  putU32(out, static_cast<uint32_t>(payload.size()));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  putU32(out, stream);
  out.append(payload);
}

void appendHeadFrame(std::string& out, FrameType type, uint8_t flags, uint32_t stream, std::string_view head,
                     std::string_view body) {
  putU32(out, static_cast<uint32_t>(4 + head.size() + body.size()));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  putU32(out, stream);
  putU32(out, static_cast<uint32_t>(head.size()));
  out.append(head);
  out.append(body);
}

Status splitHead(std::string_view payload, std::string_view* head, std::string_view* body) {
  if (payload.size() < 4) return InvalidArgument("head frame shorter than its length field");
  uint32_t n = readU32(payload.data());
  if (n > payload.size() - 4) return InvalidArgument("head length runs past the frame");
  *head = payload.substr(4, n);
  *body = payload.substr(4 + n);
  return Status::Ok();
}

Result<bool> FrameDecoder::next(Frame* out) {
  if (buf_.size() - pos_ < kHeaderSize) {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    return false;
  }
  const char* h = buf_.data() + pos_;
  uint32_t len = readU32(h);
  if (len > kMaxPayload) return InvalidArgument("frame of " + std::to_string(len) + " bytes exceeds the limit");
  if (!knownType(static_cast<uint8_t>(h[4]))) {
    return InvalidArgument("unknown frame type " + std::to_string(static_cast<uint8_t>(h[4])));
  }
  if (buf_.size() - pos_ < kHeaderSize + len) return false;
  out->type = static_cast<FrameType>(h[4]);
  out->flags = static_cast<uint8_t>(h[5]);
  out->stream = readU32(h + 6);
  out->payload.assign(h + kHeaderSize, len);
  pos_ += kHeaderSize + len;
  // Compact once the consumed prefix dominates, so the buffer does not grow forever.
  if (pos_ > (64u << 10) && pos_ * 2 > buf_.size()) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  return true;
}

}  // namespace nubo::runtime::protocol
