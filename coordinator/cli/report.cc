#include "coordinator/cli/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string_view>

namespace lameduck::coordinator {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kUsage =
    "usage: lameduck report [FILE|-] [--svg OUT]\n"
    "  reads lameduck's JSON event log (FILE, or stdin: kubectl logs POD -c lameduck | lameduck "
    "report)\n"
    "  and prints each drain in it as a timeline; --svg OUT also draws the last drain as an SVG "
    "chart\n";

// "2026-12-07T20:36:55.869Z" (the form lameduck writes, and nothing else) as ms since the epoch.
// A log is input: anything else, or a field out of its range, is not a time.
std::optional<int64_t> ParseTimestamp(std::string_view text) {
  constexpr std::string_view kForm = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (text.size() != kForm.size()) return std::nullopt;
  for (size_t i = 0; i < kForm.size(); ++i) {
    bool digit = text[i] >= '0' && text[i] <= '9';
    if (kForm[i] == 'd' ? !digit : text[i] != kForm[i]) return std::nullopt;
  }
  auto field = [&](size_t at, size_t width) {
    int value = 0;
    for (size_t i = at; i < at + width; ++i) value = value * 10 + (text[i] - '0');
    return value;
  };
  std::tm tm{};
  tm.tm_year = field(0, 4) - 1900;
  tm.tm_mon = field(5, 2) - 1;
  tm.tm_mday = field(8, 2);
  tm.tm_hour = field(11, 2);
  tm.tm_min = field(14, 2);
  tm.tm_sec = field(17, 2);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000 + field(20, 3);
}

// A number field, or `otherwise` when absent or not a number; within ±1e15 whatever the log says
// (a log is input: its numbers must not overflow what is computed from them).
double Number(const Json& fields, const char* key, double otherwise = 0) {
  constexpr double kLimit = 1e15;
  auto it = fields.find(key);
  if (it == fields.end() || !it->is_number()) return otherwise;
  double value = it->get<double>();
  return std::isfinite(value) ? std::clamp(value, -kLimit, kLimit) : otherwise;
}

bool HasNumber(const Json& fields, const char* key) {
  auto it = fields.find(key);
  return it != fields.end() && it->is_number();
}

std::string Text(const Json& fields, const char* key) {
  auto it = fields.find(key);
  return it != fields.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Int(double value) { return std::to_string(static_cast<int64_t>(std::llround(value))); }

// 250 -> "250ms", 1976 -> "1.976s", 5000 -> "5s".
std::string Duration(double ms) {
  int64_t whole = std::llround(ms);
  if (std::llabs(whole) < 1000) return std::to_string(whole) + "ms";
  char text[32];
  if (whole % 1000 == 0) {
    std::snprintf(text, sizeof(text), "%llds", static_cast<long long>(whole / 1000));
  } else {
    std::snprintf(text, sizeof(text), "%.3fs", static_cast<double>(whole) / 1000.0);
  }
  return text;
}

std::string Stamp(int64_t at_ms) {
  char text[32];
  std::snprintf(text, sizeof(text), "%+9.3fs", static_cast<double>(at_ms) / 1000.0);
  return text;
}

std::string Plural(double count, std::string_view one, std::string_view many) {
  return Int(count) + " " + std::string(std::llround(count) == 1 ? one : many);
}

// "websocket 2, sse 1" for the kinds with any open; "" when none.
std::string LongLivedOpen(const Json& fields) {
  std::string out;
  auto it = fields.find("long_lived");
  if (it == fields.end() || !it->is_object()) return out;
  for (const auto& [kind, count] : it->items()) {
    double open = Number(*it, kind.c_str());
    if (open == 0) continue;
    out += (out.empty() ? "" : ", ") + kind + " " + Int(open);
  }
  return out;
}

std::string Counts(const Json& fields) {
  std::string out = Plural(Number(fields, "connections"), "connection", "connections") + " (" +
                    Int(Number(fields, "idle")) + " idle), " +
                    Plural(Number(fields, "in_flight"), "request", "requests") + " in flight";
  if (Number(fields, "http2_connections") > 0) {
    out += "; HTTP/2: " + Int(Number(fields, "http2_connections")) + " connections, " +
           Int(Number(fields, "http2_streams")) + " streams";
  }
  if (std::string open = LongLivedOpen(fields); !open.empty()) out += "; long-lived: " + open;
  return out;
}

std::string GraceWhy(const std::string& reason) {
  if (reason == "delay") return "at --drain-delay";
  if (reason == "min") return "at --drain-delay (quiet long enough already)";
  if (reason == "quiet") return "on quiet";
  if (reason == "max") return "at --drain-delay-max";
  if (reason == "deadline") return "cut short by the deadline";
  if (reason == "app_exit") return "at once (the app had exited)";
  return reason;
}

// What one event says, or "" for one the timeline leaves out.
std::vector<std::string> Describe(const DrainRecord::Event& event) {
  const Json& f = event.fields;
  const std::string& name = event.name;
  if (name == "drain.start") {
    std::vector<std::string> lines = {"drain starts: " + Counts(f) + "; /ready answers 503"};
    if (f.contains("drain_delay_max_ms")) {
      std::string quiet = HasNumber(f, "quiet_needed_ms")
                              ? "needs " + Duration(Number(f, "quiet_needed_ms")) + " of quiet"
                              : "no traffic to judge silence by: waits the maximum";
      char rate[32];
      std::snprintf(rate, sizeof(rate), "%.1f", Number(f, "arrival_rate"));
      lines.push_back("accept grace " + Duration(Number(f, "drain_delay_ms")) + " to " +
                      Duration(Number(f, "drain_delay_max_ms")) + " on evidence: " + rate +
                      " new connections/s before the drain, " + quiet);
    } else {
      lines.push_back("accept grace " + Duration(Number(f, "drain_delay_ms")));
    }
    std::string deadline =
        "deadline " + Duration(Number(f, "deadline_ms", Number(f, "drain_timeout_ms")));
    if (f.contains("budget_ms")) {
      deadline += " (termination grace " + Duration(Number(f, "budget_ms")) + ")";
    }
    lines.push_back(deadline);
    return lines;
  }
  if (name == "drain.progress") return {Text(f, "phase") + ": " + Counts(f)};
  if (name == "listener.closed") {
    std::string line = "listeners closed: the accept grace ended " + GraceWhy(Text(f, "reason")) +
                       "; " + Plural(Number(f, "arrivals"), "new connection", "new connections") +
                       " during it";
    if (f.contains("quiet_ms")) {
      line += ", none in its last " + Duration(Number(f, "quiet_ms"));
      if (HasNumber(f, "quiet_needed_ms")) {
        line += " (" + Duration(Number(f, "quiet_needed_ms")) + " needed)";
      }
    }
    return {line};
  }
  if (name == "idle.closed") {
    return {Plural(Number(f, "count"), "idle connection", "idle connections") +
            " closed, spread over " + Duration(Number(f, "spread_ms"))};
  }
  if (name == "drain.forced") {
    return {"FORCED: " + Plural(Number(f, "count"), "connection", "connections") +
            " cut at the deadline"};
  }
  if (name == "drain.complete") {
    return {"drain complete: " + Plural(Number(f, "served_during_drain"), "response", "responses") +
            " served during it, " + Int(Number(f, "forced")) + " forced"};
  }
  if (name == "drain.cancelled") {
    std::string caller = Text(f, "caller");
    return {"drain cancelled (POST /undrain" + (caller.empty() ? "" : " by " + caller) +
            "): ready again"};
  }
  if (name == "drain.join") return {"another trigger joined the drain: " + Text(f, "trigger")};
  if (name == "signal.ignored") return {Text(f, "signal") + " ignored: the drain was running"};
  if (name == "app.signal") {
    std::string to = f.contains("pids") ? " to " + f["pids"].dump() : "";
    return {"app told to exit: " + Text(f, "signal") + to + " (" + Text(f, "mode") + ")"};
  }
  if (name == "app.kill") return {"app killed: it outlived --app-exit-timeout"};
  if (name == "app.exit") return {"app exited: status " + Int(Number(f, "status"))};
  if (name == "exit") return {"lameduck exits: status " + Int(Number(f, "status"))};
  return {};
}

// The drain's counts over time: (ms, connections, in flight).
struct Sample {
  double at_ms;
  double connections;
  double in_flight;
};

std::vector<Sample> Samples(const DrainRecord& drain) {
  std::vector<Sample> samples;
  for (const DrainRecord::Event& event : drain.events) {
    double at = static_cast<double>(event.at_ms);
    if (event.name == "drain.start" || event.name == "drain.progress") {
      samples.push_back(
          {at, Number(event.fields, "connections"), Number(event.fields, "in_flight")});
    } else if (event.name == "drain.complete" || event.name == "drain.forced") {
      if (!samples.empty() && samples.back().at_ms <= at) {
        samples.push_back({at, samples.back().connections, samples.back().in_flight});
      }
      samples.push_back({at, 0, 0});
    }
  }
  return samples;
}

std::string Escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// A tick step for an axis up to `top`: 1, 2 or 5 times a power of ten, about five ticks.
double NiceStep(double top) {
  double rough = std::max(top / 5, 1e-9);
  double power = std::pow(10, std::floor(std::log10(rough)));
  for (double factor : {1.0, 2.0, 5.0}) {
    if (rough <= factor * power) return factor * power;
  }
  return 10 * power;
}

std::string Fixed(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", value);
  return text;
}

}  // namespace

const DrainRecord::Event* DrainRecord::Find(std::string_view name) const {
  for (const Event& event : events) {
    if (event.name == name) return &event;
  }
  return nullptr;
}

std::vector<DrainRecord> ReadDrains(std::istream& in) {
  std::vector<DrainRecord> drains;
  int64_t start_ms = 0;
  for (std::string line; std::getline(in, line);) {
    size_t brace = line.find('{');
    if (brace == std::string::npos) continue;
    Json object = Json::parse(line.begin() + static_cast<std::ptrdiff_t>(brace), line.end(),
                              nullptr, /*allow_exceptions=*/false);
    if (!object.is_object() || !object.contains("event") || !object["event"].is_string()) continue;
    std::string name = object["event"].get<std::string>();
    std::optional<int64_t> ts = ParseTimestamp(Text(object, "ts"));
    if (!ts) continue;
    if (name == "drain.start") {
      drains.emplace_back();
      drains.back().started = Text(object, "ts");
      start_ms = *ts;
    }
    if (drains.empty()) continue;  // before the first drain: start, ready, ...
    for (const char* key : {"ts", "level", "event"}) object.erase(key);
    drains.back().events.push_back({*ts - start_ms, std::move(name), std::move(object)});
  }
  return drains;
}

std::string FormatTimeline(const DrainRecord& drain, size_t index) {
  const DrainRecord::Event* start = drain.Find("drain.start");
  std::string out = "drain " + std::to_string(index) + ": " +
                    (start ? Text(start->fields, "trigger") : std::string("?")) + " at " +
                    drain.started;
  if (start && start->fields.contains("caller")) out += ", by " + Text(start->fields, "caller");
  out += "\n";
  for (const DrainRecord::Event& event : drain.events) {
    std::vector<std::string> lines = Describe(event);
    for (size_t i = 0; i < lines.size(); ++i) {
      out += (i == 0 ? Stamp(event.at_ms) : std::string(10, ' ')) + "  " + lines[i] + "\n";
    }
  }
  const DrainRecord::Event* complete = drain.Find("drain.complete");
  if (complete == nullptr) {
    out += drain.Find("drain.cancelled") ? "" : "  (the log ends before the drain did)\n";
    return out;
  }
  const Json& f = complete->fields;
  std::string grace = f.contains("accept_grace") ? Text(f["accept_grace"], "ended") : "";
  out += "  phases: accept grace " + Duration(Number(f, "accept_grace_ms")) +
         (grace.empty() ? "" : " (" + grace + ")") + " | in-flight wait " +
         Duration(Number(f, "in_flight_wait_ms")) + " | total " +
         Duration(Number(f, "duration_ms")) + "\n";
  out +=
      "  at the start: " + Plural(Number(f, "connections_at_start"), "connection", "connections") +
      ", " + Plural(Number(f, "in_flight_at_start"), "request", "requests") +
      " in flight; served during the drain: " + Int(Number(f, "served_during_drain")) +
      "; idle closed: " + Int(Number(f, "idle_closed")) + "; forced: " + Int(Number(f, "forced")) +
      "\n";
  if (f.contains("accounting") && f["accounting"].is_object()) {
    const Json& requests = f["accounting"].value("requests", Json::object());
    const Json& connections = f["accounting"].value("connections", Json::object());
    auto verdict = [](const Json& bucket) {
      auto balanced = bucket.find("balanced");  // end() for what is not an object
      return balanced != bucket.end() && *balanced == true
                 ? " (balanced)\n"
                 : " (DOES NOT BALANCE: a bug in lameduck)\n";
    };
    out += "  requests: " + Int(Number(requests, "in_flight_at_start")) + " in flight + " +
           Int(Number(requests, "arrived")) + " arrived = " + Int(Number(requests, "completed")) +
           " completed + " + Int(Number(requests, "completed_close")) +
           " with Connection: close + " + Int(Number(requests, "refused")) + " refused + " +
           Int(Number(requests, "aborted")) + " aborted + " + Int(Number(requests, "forced")) +
           " forced" + verdict(requests);
    out += "  connections: " + Int(Number(connections, "open_at_start")) + " open + " +
           Int(Number(connections, "accepted")) +
           " accepted = " + Int(Number(connections, "after_response")) +
           " closed after a response + " + Int(Number(connections, "idle")) + " idle + " +
           Int(Number(connections, "long_lived")) + " long-lived + " +
           Int(Number(connections, "by_client")) + " by the client + " +
           Int(Number(connections, "forced")) + " forced" + verdict(connections);
  }
  if (f.contains("budget_ms")) {
    out += "  budget: termination grace " + Duration(Number(f, "budget_ms")) + ", deadline " +
           Duration(Number(f, "deadline_ms")) + "; slack " + Duration(Number(f, "slack_ms")) +
           " beyond --app-exit-timeout\n";
  }
  if (f.contains("long_lived") && f["long_lived"].is_object()) {
    for (const auto& [kind, counts] : f["long_lived"].items()) {
      out += "  " + kind + ": " + Int(Number(counts, "at_start")) + " at the start, " +
             Int(Number(counts, "clean")) + " ended cleanly, " + Int(Number(counts, "by_peer")) +
             " by their peers, " + Int(Number(counts, "forced")) + " forced\n";
    }
  }
  return out;
}

std::string DrawSvg(const DrainRecord& drain) {
  constexpr double kWidth = 900, kHeight = 340, kLeft = 60, kRight = 20, kTop = 40, kBottom = 50;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  std::vector<Sample> samples = Samples(drain);
  double end_ms = 1;
  for (const DrainRecord::Event& event : drain.events) {
    end_ms = std::max(end_ms, static_cast<double>(event.at_ms));
  }
  double top = 1;
  for (const Sample& s : samples) top = std::max({top, s.connections, s.in_flight});
  const double y_step = std::max(1.0, NiceStep(top * 1.1));
  top = std::ceil(top * 1.1 / y_step) * y_step;
  const double x_step = std::max(1.0, NiceStep(end_ms));
  auto x = [&](double ms) { return kLeft + plot_w * std::clamp(ms / end_ms, 0.0, 1.0); };
  auto y = [&](double value) { return kTop + plot_h * (1 - value / top); };

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + Int(kWidth) +
                    "\" height=\"" + Int(kHeight) + "\" viewBox=\"0 0 " + Int(kWidth) + " " +
                    Int(kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  const DrainRecord::Event* start = drain.Find("drain.start");
  svg += "<text x=\"" + Int(kLeft) + "\" y=\"20\" font-size=\"14\">lameduck drain (" +
         Escape(start ? Text(start->fields, "trigger") : "") + ") at " + Escape(drain.started) +
         "</text>\n";
  // A label beside x, on row `row` from the top; left of x in the chart's last third.
  auto label = [&](double px, int row, const char* colour, const std::string& text) {
    bool left = px > kLeft + plot_w * 2 / 3;
    svg += "<text x=\"" + Fixed(left ? px - 4 : px + 4) + "\" y=\"" + Int(kTop + 14 + 14 * row) +
           "\" fill=\"" + colour + "\"" + (left ? " text-anchor=\"end\"" : "") + ">" +
           Escape(text) + "</text>\n";
  };
  auto rect = [&](double from, double to, const char* fill) {
    to = std::max(to, from + end_ms / 400);  // an instant still shows
    svg += "<rect x=\"" + Fixed(x(from)) + "\" y=\"" + Int(kTop) + "\" width=\"" +
           Fixed(x(to) - x(from)) + "\" height=\"" + Int(plot_h) + "\" fill=\"" + fill + "\"/>\n";
  };
  auto line = [&](double x1, double y1, double x2, double y2, const char* colour,
                  const char* extra = "") {
    svg += "<line x1=\"" + Fixed(x1) + "\" y1=\"" + Fixed(y1) + "\" x2=\"" + Fixed(x2) +
           "\" y2=\"" + Fixed(y2) + "\" stroke=\"" + colour + "\"" + extra + "/>\n";
  };
  // Phases: the accept grace, then the wait for what was in flight.
  const DrainRecord::Event* closed = drain.Find("listener.closed");
  const DrainRecord::Event* done = drain.Find("drain.complete");
  double grace_end = closed ? static_cast<double>(closed->at_ms) : end_ms;
  double drain_end = done ? static_cast<double>(done->at_ms) : end_ms;
  std::string reason = closed ? Text(closed->fields, "reason") : "";
  rect(0, grace_end, "#fff4cc");
  if (closed) rect(grace_end, drain_end, "#e3f0ff");
  // Axes, with ticks at round steps.
  line(kLeft, y(0), kLeft + plot_w, y(0), "#333");
  line(kLeft, kTop, kLeft, y(0), "#333");
  for (double ms = 0; ms <= end_ms; ms += x_step) {
    svg += "<text x=\"" + Fixed(x(ms)) + "\" y=\"" + Fixed(y(0) + 16) +
           "\" text-anchor=\"middle\">" + Escape(Duration(ms)) + "</text>\n";
  }
  for (double value = 0; value <= top; value += y_step) {
    svg += "<text x=\"" + Int(kLeft - 6) + "\" y=\"" + Fixed(y(value) + 4) +
           "\" text-anchor=\"end\">" + Int(value) + "</text>\n";
  }
  svg += "<text x=\"" + Fixed(kLeft + plot_w / 2) + "\" y=\"" + Int(kHeight - 12) +
         "\" text-anchor=\"middle\">time from the trigger</text>\n";
  // The two series, as steps (a count holds until the next sample): connections wide
  // underneath, requests narrow on top, so both show where they are equal.
  auto series = [&](double Sample::*value, const char* colour, int width) {
    std::string points;
    for (size_t i = 0; i < samples.size(); ++i) {
      if (i > 0) points += Fixed(x(samples[i].at_ms)) + "," + Fixed(y(samples[i - 1].*value)) + " ";
      points += Fixed(x(samples[i].at_ms)) + "," + Fixed(y(samples[i].*value)) + " ";
    }
    svg += "<polyline fill=\"none\" stroke=\"" + std::string(colour) + "\" stroke-width=\"" +
           std::to_string(width) + "\" points=\"" + points + "\"/>\n";
  };
  series(&Sample::connections, "#8fb3e8", 6);
  series(&Sample::in_flight, "#e07000", 2);
  // Labels and marks last, over the lines.
  label(x(0), 0, "#555", "accept grace" + (reason.empty() ? "" : " (" + reason + ")"));
  if (closed) {
    line(x(grace_end), kTop, x(grace_end), y(0), "#7a5c00", " stroke-dasharray=\"4 3\"");
    label(x(grace_end), 1, "#7a5c00", "listeners closed");
    if (x(drain_end) - x(grace_end) >= 60) {  // named inside its band, where it fits
      svg += "<text x=\"" + Fixed((x(grace_end) + x(drain_end)) / 2) + "\" y=\"" +
             Int(kTop + plot_h - 8) + "\" fill=\"#555\" text-anchor=\"middle\">in flight</text>\n";
    }
  }
  if (const DrainRecord::Event* forced = drain.Find("drain.forced")) {
    double at = static_cast<double>(forced->at_ms);
    line(x(at), kTop, x(at), y(0), "#c00000", " stroke-dasharray=\"4 3\"");
    label(x(at), 3, "#c00000", "forced " + Int(Number(forced->fields, "count")));
  }
  if (done) {
    line(x(drain_end), kTop, x(drain_end), y(0), "#1a7f37", " stroke-dasharray=\"4 3\"");
    label(x(drain_end), 4, "#1a7f37", "complete");
  }
  double legend = kWidth - kRight - 260;
  svg += "<rect x=\"" + Fixed(legend) + "\" y=\"7\" width=\"12\" height=\"6\" fill=\"#8fb3e8\"/>" +
         "<text x=\"" + Fixed(legend + 16) + "\" y=\"14\">connections</text>\n";
  svg += "<rect x=\"" + Fixed(legend + 110) +
         "\" y=\"8\" width=\"12\" height=\"3\" fill=\"#e07000\"/><text x=\"" + Fixed(legend + 126) +
         "\" y=\"14\">requests in flight</text>\n";
  svg += "</svg>\n";
  return svg;
}

int RunReport(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
              std::ostream& err) {
  std::optional<std::string> file;
  std::optional<std::string> svg_path;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out << kUsage;
      return 0;
    }
    if (arg == "--svg" || arg.starts_with("--svg=")) {
      if (arg == "--svg" && i + 1 == args.size()) {
        err << "lameduck report: --svg: missing value (a file to write the chart to)\n";
        return 2;
      }
      svg_path = arg == "--svg" ? args[++i] : arg.substr(6);
      continue;
    }
    if (arg.starts_with("-") && arg != "-") {
      err << "lameduck report: unknown option \"" << arg << "\"\n" << kUsage;
      return 2;
    }
    if (file) {
      err << "lameduck report: one log at a time (got \"" << *file << "\" and \"" << arg << "\")\n";
      return 2;
    }
    file = arg;
  }
  std::ifstream opened;
  std::istream* source = &in;
  if (file && *file != "-") {
    opened.open(*file);
    if (!opened) {
      err << "lameduck report: cannot read \"" << *file << "\"\n";
      return 1;
    }
    source = &opened;
  }
  std::vector<DrainRecord> drains = ReadDrains(*source);
  if (drains.empty()) {
    err << "lameduck report: no drain in the log (no drain.start event; the report reads the "
           "JSON log, --log-format json)\n";
    return 1;
  }
  for (size_t i = 0; i < drains.size(); ++i) {
    if (i > 0) out << "\n";
    out << FormatTimeline(drains[i], i + 1);
  }
  if (svg_path) {
    std::ofstream svg(*svg_path);
    svg << DrawSvg(drains.back());
    if (!svg.flush()) {
      err << "lameduck report: --svg: cannot write \"" << *svg_path << "\"\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace lameduck::coordinator
