// dense (decode) — every cached key; the baseline every decode selector is measured against.
// Parameters: none. GQA: the query heads of a group share their KV head's keys.
#include "methods/registry.h"

namespace ls {
namespace {

class DenseDecode final : public DecodeSelector {
 public:
  std::int64_t budget() const override { return 0; }
  std::int64_t select(const DecodeQuery&, const DecodeKeys& keys, Selection& out) override {
    decode::select_dense(keys, out);
    return 0;
  }
};

MethodInfo dense_decode_info() {
  MethodInfo info;
  info.name = "dense";
  info.phase = "decode";
  info.paper = "full attention over the KV cache (baseline)";
  info.summary = "every cached key";
  info.make_decode = [](const Params&) { return std::make_unique<DenseDecode>(); };
  return info;
}

LS_REGISTER_METHOD(dense_decode_info());

}  // namespace
}  // namespace ls
