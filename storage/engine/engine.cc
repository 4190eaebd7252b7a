#include "storage/engine/engine.h"

#include "storage/engine/engine_list.h"

namespace ringstore::storage {

absl::string_view BackendName(Backend backend) {
  switch (backend) {
#define RINGSTORE_BACKEND_NAME_CASE(name, enumerator, factory) \
  case Backend::enumerator:                                   \
    return #name;
    RINGSTORE_ENGINE_LIST(RINGSTORE_BACKEND_NAME_CASE)
#undef RINGSTORE_BACKEND_NAME_CASE
    case Backend::kUnspecified:
      break;
  }
  return "unspecified";
}

}  // namespace ringstore::storage
