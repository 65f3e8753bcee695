// ChooseEvictions: which admin connections to close when there are more than the cap, from
// facts about each (no sockets, no clock of its own), so the policy is tested by itself.
// AdminServer gathers the facts and closes what this picks.
//
// Over the cap, some must go, and not a probe (a fresh connection whose request is on its way,
// or waiting unread). Oldest first, in order: connections that have sent nothing for the silent
// grace (an idle flood); those still sending their head (a slowloris); young ones without a whole
// head waiting; and only when every other one is being answered, waits for the drain or has a
// head waiting, the newest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace lameduck::coordinator {

struct AdminConnectionFacts {
  bool awaiting_head = false;  // still reading its request head: not answered, not waiting
  bool received_any = false;   // has sent at least one byte
  uint64_t accepted_ms = 0;    // loop time of the accept
};

struct EvictionLimits {
  size_t max_connections = 0;
  uint64_t silent_grace_ms = 0;  // silent this long: a flood's
};

// `oldest_first`: every open connection, in accept order. `head_waiting(i)`: whether a whole
// request head sits unread in connection i's socket; asked only when the cheaper facts leave
// the choice open (it costs a syscall). Returns the indices to close, as many as are over the
// cap, each once.
std::vector<size_t> ChooseEvictions(const std::vector<AdminConnectionFacts>& oldest_first,
                                    EvictionLimits limits, uint64_t now_ms,
                                    const std::function<bool(size_t)>& head_waiting);

}  // namespace lameduck::coordinator
