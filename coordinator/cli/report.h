// `lameduck report [FILE|-] [--svg OUT]`: reads lameduck's JSON event log (a file, or
// `kubectl logs POD -c lameduck` piped in) and tells each drain in it as a timeline a person reads
// at a glance: times from the trigger, connections and requests at each step, how the accept
// grace ended and why, what was forced, the budget and its slack, the accounting. --svg draws the
// last drain as a chart (connections and requests in flight over time, phases shaded, the
// listener close, the forcing and the end marked).
//
// Lines that are not JSON objects are skipped (a `kubectl logs --timestamps` prefix before the
// object is allowed); so are events it does not know.
#pragma once

#include <cstdint>
#include <istream>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace lameduck::coordinator {

// One drain as the log tells it: its events from drain.start to the next drain.start (or the end
// of the log), each with its time from the trigger.
struct DrainRecord {
  struct Event {
    int64_t at_ms = 0;  // from drain.start
    std::string name;   // "listener.closed"
    nlohmann::json fields;
  };
  std::string started;  // drain.start's ts, as logged
  std::vector<Event> events;
  const Event* Find(std::string_view name) const;
};

// Every drain in the log, in order.
std::vector<DrainRecord> ReadDrains(std::istream& in);
// The timeline of one drain (numbered `index` from 1), lines ending in '\n'.
std::string FormatTimeline(const DrainRecord& drain, size_t index);
// The drain as a standalone SVG document.
std::string DrawSvg(const DrainRecord& drain);

// args: what follows "report". 0 when it printed at least one drain, 1 when the log held none or
// could not be read (one line on err), 2 for bad usage.
int RunReport(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
              std::ostream& err);

}  // namespace lameduck::coordinator
