#include "coordinator/admin/admin_eviction.h"

namespace lameduck::coordinator {

std::vector<size_t> ChooseEvictions(const std::vector<AdminConnectionFacts>& oldest_first,
                                    EvictionLimits limits, uint64_t now_ms,
                                    const std::function<bool(size_t)>& head_waiting) {
  std::vector<size_t> doomed;
  if (oldest_first.size() <= limits.max_connections) return doomed;
  size_t excess = oldest_first.size() - limits.max_connections;
  std::vector<bool> chosen(oldest_first.size(), false);
  auto evict = [&](auto&& matches) {
    for (size_t i = 0; excess > 0 && i < oldest_first.size(); ++i) {
      if (chosen[i] || !oldest_first[i].awaiting_head || !matches(i)) continue;
      chosen[i] = true;
      doomed.push_back(i);
      --excess;
    }
  };
  evict([&](size_t i) {
    const AdminConnectionFacts& c = oldest_first[i];
    return !c.received_any && now_ms - c.accepted_ms >= limits.silent_grace_ms;
  });
  evict([&](size_t i) { return oldest_first[i].received_any; });
  evict([&](size_t i) { return !head_waiting(i); });
  for (size_t i = oldest_first.size(); excess > 0 && i-- > 0;) {
    if (chosen[i]) continue;
    chosen[i] = true;
    doomed.push_back(i);
    --excess;
  }
  return doomed;
}

}  // namespace lameduck::coordinator
