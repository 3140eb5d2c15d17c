#include "common/domain_name.h"

#include <idn2.h>

#include <cstdlib>
#include <memory>

namespace nubo {
namespace {

bool isAscii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

// Every label of an IPv4 address is digits; a name whose last label is all
// digits cannot be a DNS name anyone registers.
bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

Status checkLabel(std::string_view label, std::string_view host) {
  std::string where = " in \"" + std::string(host) + "\"";
  if (label.empty()) return InvalidArgument("empty label (two dots in a row, or a leading dot)" + where);
  if (label.size() > 63) {
    return InvalidArgument("label \"" + std::string(label.substr(0, 20)) + "...\" has " +
                           std::to_string(label.size()) + " characters; a label may have at most 63" + where);
  }
  for (char c : label) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) {
      return InvalidArgument("label \"" + std::string(label) + "\" has the character '" + std::string(1, c) +
                             "'; a host name may use only letters, digits and '-'" + where);
    }
  }
  if (label.front() == '-' || label.back() == '-') {
    return InvalidArgument("label \"" + std::string(label) + "\" starts or ends with '-'" + where);
  }
  return Status::Ok();
}

}  // namespace

Result<DomainName> normalizeDomain(std::string_view input) {
  if (input.empty()) return InvalidArgument("the host name is empty");
  if (input.size() > 1024) return InvalidArgument("the host name is too long (at most 253 characters)");
  std::string name(input);
  if (name.back() == '.') name.pop_back();
  if (name.find(':') != std::string::npos || name.find('[') != std::string::npos) {
    return InvalidArgument("\"" + name + "\" is an IP address or has a port; bind a host name without a port");
  }
  DomainName out;
  if (name.size() >= 2 && name.compare(0, 2, "*.") == 0) {
    out.wildcard = true;
    name.erase(0, 2);
  }
  if (name.find('*') != std::string::npos) {
    return InvalidArgument("\"" + std::string(input) +
                           "\" has '*' where only a whole first label may be one, as in *.example.com");
  }
  if (!isAscii(name)) {
    char* ascii = nullptr;
    int rc = idn2_to_ascii_8z(name.c_str(), &ascii, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    std::unique_ptr<char, decltype(&std::free)> owned(ascii, &std::free);
    if (rc != IDN2_OK) {
      return InvalidArgument("\"" + name + "\" is not a valid internationalized host name: " + idn2_strerror(rc));
    }
    name = ascii;
  }
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (name.size() > 253) {
    return InvalidArgument("\"" + name.substr(0, 40) + "...\" has " + std::to_string(name.size()) +
                           " characters; a host name may have at most 253");
  }
  size_t labels = 0;
  std::string_view rest = name, last;
  while (true) {
    size_t dot = rest.find('.');
    last = rest.substr(0, dot);
    RETURN_IF_ERROR(checkLabel(last, name));
    ++labels;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (allDigits(last)) {
    return InvalidArgument("\"" + name + "\" looks like an IP address; bind a host name");
  }
  if (labels < 2 && out.wildcard) {
    return InvalidArgument("\"*." + name + "\" has one label after \"*.\", a whole top-level domain; bind names "
                           "under a domain, such as *.example.com");
  }
  if (labels < 2) {
    return InvalidArgument("\"" + name + "\" has one label; bind a full name such as " + name + ".example.com");
  }
  out.host = out.wildcard ? "*." + name : name;
  return out;
}

std::string_view requestHostKey(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return host;
}

}  // namespace nubo
