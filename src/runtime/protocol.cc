#include "runtime/protocol.h"

namespace nubo::runtime::protocol {
namespace {

void putU32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out.append(b, 4);
}

uint32_t getU32(const char* p) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

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

}  // namespace

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
  uint32_t n = getU32(payload.data());
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
  uint32_t len = getU32(h);
  if (len > kMaxPayload) return InvalidArgument("frame of " + std::to_string(len) + " bytes exceeds the limit");
  if (!knownType(static_cast<uint8_t>(h[4]))) {
    return InvalidArgument("unknown frame type " + std::to_string(static_cast<uint8_t>(h[4])));
  }
  if (buf_.size() - pos_ < kHeaderSize + len) return false;
  out->type = static_cast<FrameType>(h[4]);
  out->flags = static_cast<uint8_t>(h[5]);
  out->stream = getU32(h + 6);
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
