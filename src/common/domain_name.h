// Host names for custom domains: what a user types turned into the one form
// that is stored and matched (lowercase ASCII, non-ASCII labels in punycode
// by IDNA2008 with the UTS #46 mapping, no trailing dot), and checked
// against the DNS rules, each refusal naming the bad part.
//
//   "Shop.Example.COM."   -> "shop.example.com"
//   "bücher.example"      -> "xn--bcher-kva.example"
//   "*.example.com"       -> a wildcard for exactly one label more
//
// Refused: IP literals, labels over 63 bytes or names over 253, characters
// outside a-z 0-9 '-' (after the mapping), labels that start or end with
// '-', single-label names, a numeric top-level label, and '*' anywhere but
// as the whole first label.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace nubo {

struct DomainName {
  std::string host;       // the normalized name, "*.example.com" for a wildcard
  bool wildcard = false;  // host starts with "*."
  // For a wildcard, the part after "*." ("example.com"); else the host.
  std::string_view suffix() const { return wildcard ? std::string_view(host).substr(2) : std::string_view(host); }
};

// kInvalidArgument naming the problem (and the label) when `input` is not a
// host name that may be bound.
Result<DomainName> normalizeDomain(std::string_view input);

// A request's Host (the server has already taken off the port and
// lowercased it) as the table's keys are: without a trailing dot.
std::string_view requestHostKey(std::string_view host);

}  // namespace nubo
