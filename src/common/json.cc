#include "common/json.h"

namespace nubo {

Result<Json> parseJson(std::string_view text, std::string_view what) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again with exceptions only to get the parser's position message.
    try {
      Json ignored = Json::parse(text.begin(), text.end());
      (void)ignored;
    } catch (const Json::exception& e) {
      return InvalidArgument(std::string(what) + " is not valid JSON: " + e.what());
    }
    return InvalidArgument(std::string(what) + " is not valid JSON");
  }
  return j;
}

std::string dumpJson(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace nubo
