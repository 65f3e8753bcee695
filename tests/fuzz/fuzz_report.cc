// fuzz_report: `lameduck report` over any log: coordinator::ReadDrains, FormatTimeline and
// DrawSvg. Input: the log's bytes. A log is input like any other (kubectl logs of whatever
// container, a file cut short): a crash, an exception, a hang or UB is a bug; the SVG must close.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "coordinator/cli/report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lameduck::coordinator;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::vector<DrainRecord> drains = ReadDrains(in);
  for (size_t i = 0; i < drains.size(); ++i) (void)FormatTimeline(drains[i], i + 1);
  if (!drains.empty()) {
    std::string svg = DrawSvg(drains.back());
    if (!svg.ends_with("</svg>\n")) {
      std::fprintf(stderr, "fuzz: the SVG does not end with </svg>\n");
      std::abort();
    }
  }
  return 0;
}
