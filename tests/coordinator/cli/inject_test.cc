// `lameduck inject` and `uninject` over the cases of inject_cases/ (realistic manifests, each
// with a NAME.expect saying what inject must do to it), then one behaviour at a time: the
// wiring, the Services, annotations, re-injection, preStop chaining, what is left alone, bad
// input and bad usage.
#include "coordinator/cli/inject.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "coordinator/cli/manifest.h"

namespace lameduck::coordinator {
namespace {

namespace fs = std::filesystem;
using manifest::Json;
using Args = std::vector<std::string>;

const fs::path kCases = fs::path(__FILE__).parent_path() / "inject_cases";

::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

::testing::AssertionResult IsOneLine(std::string_view text) {
  if (!text.empty() && text.find('\n') == text.size() - 1) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "not exactly one line: \"" << text << "\"";
}

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(file), {}};
}

struct Outcome {
  int status;
  std::string out;
  std::string err;
};

Outcome Inject(const std::string& input, const Args& args = {}) {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  int status = RunInject(args, in, out, err);
  return {status, out.str(), err.str()};
}

Outcome Uninject(const std::string& input, const Args& args = {}) {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  int status = RunUninject(args, in, out, err);
  return {status, out.str(), err.str()};
}

manifest::Stream Parse(const std::string& text) {
  auto stream = manifest::Read(text);
  EXPECT_TRUE(stream) << (stream ? "" : stream.error());
  return stream ? std::move(stream).value() : manifest::Stream{};
}

// "Kind/name" of an object.
std::string Id(const Json& object) {
  std::string kind = object.value("kind", "");
  std::string name;
  if (auto metadata = object.find("metadata"); metadata != object.end() && metadata->is_object()) {
    name = metadata->value("name", "");
  }
  return kind + "/" + name;
}

// Every object of a stream by id, with the document it came in (when it is the document).
struct Located {
  const Json* object;
  const manifest::Document* document;  // null for a List's item
};

std::map<std::string, Located> Objects(const manifest::Stream& stream) {
  std::map<std::string, Located> objects;
  for (const manifest::Document& document : stream.documents) {
    const Json& value = document.value;
    std::string kind = value.is_object() ? value.value("kind", "") : "";
    if (kind == "List" || kind == "ResourceList") {
      for (const Json& item : value["items"]) objects[Id(item)] = {&item, nullptr};
    } else if (value.is_object()) {
      objects[Id(value)] = {&value, &document};
    }
  }
  return objects;
}

const Json& PodOf(const Json& object) {
  return object["kind"] == "Pod" ? object : object["spec"]["template"];
}

const Json* ContainerIn(const Json& list, std::string_view name) {
  for (const Json& container : list) {
    if (container.value("name", "") == name) return &container;
  }
  return nullptr;
}

Json Sidecar(const Json& pod) {
  for (const char* list : {"initContainers", "containers"}) {
    if (!pod["spec"].contains(list)) continue;
    if (const Json* found = ContainerIn(pod["spec"][list], "lameduck")) return *found;
  }
  ADD_FAILURE() << "no lameduck container";
  return Json::object();
}

std::string ArgValue(const Json& container, std::string_view name) {
  std::string prefix = "--" + std::string(name) + "=";
  for (const Json& arg : container["args"]) {
    const std::string& text = arg.get_ref<const std::string&>();
    if (text.starts_with(prefix)) return text.substr(prefix.size());
  }
  return "";
}

// The container as it was before inject added its preStop and mount, and renamed its port:
// what is left must equal the input's container exactly (fields, values and order).
Json WithoutWiring(Json container, const Json& before) {
  Json& mounts = container["volumeMounts"];
  mounts.erase(std::remove_if(mounts.begin(), mounts.end(),
                              [](const Json& m) { return m.value("name", "") == "lameduck"; }),
               mounts.end());
  if (!before.contains("volumeMounts")) container.erase("volumeMounts");
  if (before.contains("lifecycle") && before["lifecycle"].is_object()) {
    if (before["lifecycle"].contains("preStop")) {
      container["lifecycle"]["preStop"] = before["lifecycle"]["preStop"];
    } else {
      container["lifecycle"].erase("preStop");
    }
  } else {
    container.erase("lifecycle");
  }
  std::map<std::string, std::string> renamed;  // new name -> old
  if (container.contains("ports") && before.contains("ports")) {
    for (size_t i = 0; i < container["ports"].size(); ++i) {
      if (before["ports"][i].contains("name")) {
        renamed[container["ports"][i]["name"]] = before["ports"][i]["name"];
        container["ports"][i]["name"] = before["ports"][i]["name"];
      } else {
        container["ports"][i].erase("name");
      }
    }
  }
  // Probes and a postStart hook that named the renamed port follow it.
  std::vector<Json*> handlers;
  for (const char* key : {"readinessProbe", "livenessProbe", "startupProbe"}) {
    if (container.contains(key)) handlers.push_back(&container[key]);
  }
  if (container.contains("lifecycle") && container["lifecycle"].contains("postStart")) {
    handlers.push_back(&container["lifecycle"]["postStart"]);
  }
  for (Json* handler : handlers) {
    for (const char* action : {"httpGet", "tcpSocket", "grpc"}) {
      if (!handler->is_object() || !handler->contains(action)) continue;
      Json& port = (*handler)[action]["port"];
      if (port.is_string() && renamed.contains(port)) port = renamed[port];
    }
  }
  return container;
}

// ---- The cases.

// What a case's wired workload came to: the app's port, its entry's name, lameduck's name.
struct WiredApp {
  int app_port = 0;
  std::string entry_name;
  std::string port_name;
};

struct Case {
  std::string name;
  std::string input;
  Args args;
  std::vector<std::pair<std::string, std::string>> expect;  // directive, the rest of the line
};

std::vector<Case> LoadCases() {
  std::vector<Case> cases;
  for (const auto& entry : fs::directory_iterator(kCases)) {
    std::string ext = entry.path().extension();
    if (ext != ".yaml" && ext != ".json") continue;
    Case c{entry.path().filename(), ReadFile(entry.path()), {}, {}};
    std::istringstream expect(ReadFile(entry.path().string() + ".expect"));
    for (std::string line; std::getline(expect, line);) {
      if (line.empty() || line[0] == '#') continue;
      size_t colon = line.find(": ");
      if (colon == std::string::npos) continue;
      std::string directive = line.substr(0, colon);
      std::string rest = line.substr(colon + 2);
      if (directive == "args") {
        std::istringstream words(rest);
        for (std::string word; words >> word;) c.args.push_back(word);
      } else {
        c.expect.emplace_back(directive, rest);
      }
    }
    cases.push_back(std::move(c));
  }
  std::sort(cases.begin(), cases.end(),
            [](const Case& a, const Case& b) { return a.name < b.name; });
  return cases;
}

TEST(InjectCasesTest, ThereAreAtLeastTwelveCasesEachWithExpectations) {
  std::vector<Case> cases = LoadCases();
  EXPECT_GE(cases.size(), 12u);
  for (const Case& c : cases) EXPECT_FALSE(c.expect.empty()) << c.name;
}

// Every case: what the .expect says, in both modes.
TEST(InjectCasesTest, EachCaseIsWiredAsItsExpectationsSay) {
  for (const Case& c : LoadCases()) {
    for (const char* mode : {"native", "classic"}) {
      SCOPED_TRACE(c.name + " --mode " + mode);
      Args args = c.args;
      args.insert(args.end(), {"--mode", mode});
      Outcome outcome = Inject(c.input, args);
      ASSERT_EQ(outcome.status, 0) << outcome.err;
      manifest::Stream before = Parse(c.input);
      manifest::Stream after = Parse(outcome.out);
      EXPECT_EQ(after.format, before.format);
      auto in = Objects(before);
      auto out = Objects(after);
      EXPECT_EQ(in.size(), out.size());
      std::map<std::string, std::string> port_names;  // wired workload -> lameduck's port name
      std::map<std::string, WiredApp> wired_apps;
      for (const auto& [directive, rest] : c.expect) {
        std::string id = rest.substr(0, rest.find(' '));
        if (directive == "note") {
          EXPECT_TRUE(Contains(outcome.err, rest));
          continue;
        }
        ASSERT_TRUE(in.contains(id) && out.contains(id)) << id;
        const Json& was = *in[id].object;
        const Json& now = *out[id].object;
        if (directive == "unchanged" || directive == "skipped") {
          EXPECT_EQ(now.dump(), was.dump()) << id;
          if (in[id].document != nullptr) {  // a document of its own: byte for byte
            EXPECT_TRUE(Contains(outcome.out, in[id].document->text)) << id;
          }
          if (directive == "skipped") {
            EXPECT_TRUE(Contains(outcome.err, id.substr(id.find('/') + 1)));
          }
        } else if (directive == "wired") {
          std::string container = rest.substr(rest.find("container=") + 10);
          container = container.substr(0, container.find(' '));
          std::string app_port = rest.substr(rest.find("app-port=") + 9);
          const Json& pod = PodOf(now);
          Json sidecar = Sidecar(pod);
          EXPECT_EQ(ArgValue(sidecar, "upstream"),
                    "127.0.0.1:" + app_port.substr(0, app_port.find(' ')))
              << id;
          // protocol=h2c: a gRPC app, fronted over h2c; otherwise the default (no option).
          std::string protocol;
          if (size_t at = rest.find("protocol="); at != std::string::npos) {
            protocol = rest.substr(at + 9, rest.find(' ', at) - at - 9);
          }
          EXPECT_EQ(ArgValue(sidecar, "upstream-protocol"), protocol) << id;
          EXPECT_EQ(std::string(mode) == "native", sidecar.contains("restartPolicy")) << id;
          // lameduck is told the pod's grace period, which it checks its drain against.
          EXPECT_EQ(ArgValue(sidecar, "termination-grace"),
                    std::to_string(pod["spec"]["terminationGracePeriodSeconds"].get<int>()) + "s")
              << id;
          std::string listen = ArgValue(sidecar, "listen");
          EXPECT_EQ("0.0.0.0:" + std::to_string(sidecar["ports"][0]["containerPort"].get<int>()),
                    listen);
          port_names[id] = sidecar["ports"][0]["name"];
          WiredApp& app = wired_apps[id];
          app.app_port = std::stoi(app_port.substr(0, app_port.find(' ')));
          app.port_name = port_names[id];
          // The app container: unchanged but for the preStop, the mount and its port's name.
          const Json* app_before = ContainerIn(PodOf(was)["spec"]["containers"], container);
          const Json* app_after = ContainerIn(pod["spec"]["containers"], container);
          ASSERT_TRUE(app_before && app_after) << container;
          for (const Json& port : app_before->value("ports", Json::array())) {
            if (port["containerPort"] == wired_apps[id].app_port) {
              wired_apps[id].entry_name = port.value("name", "");
            }
          }
          EXPECT_EQ(WithoutWiring(*app_after, *app_before).dump(), app_before->dump()) << id;
          const Json& command = (*app_after)["lifecycle"]["preStop"]["exec"]["command"];
          EXPECT_EQ(command[0], "/lameduck/lameduck");
          EXPECT_EQ(command[1], "drain");
          EXPECT_EQ(command[2], "--wait");
          // No regular container keeps the name the Services use: Kubernetes looks there first.
          for (const Json& other : pod["spec"]["containers"]) {
            if (other["name"] == "lameduck") continue;
            for (const Json& port : other.value("ports", Json::array())) {
              EXPECT_NE(port.value("name", ""), port_names[id]) << id << " " << other["name"];
            }
          }
        } else if (directive == "retargeted") {
          // Every port that reached a wired app's port (by number, implicitly, or by the app
          // entry's name) now targets that workload's lameduck port by name.
          size_t reached = 0;
          const Json& selector = was["spec"]["selector"];
          for (const auto& [workload, wired] : wired_apps) {
            const Json& labels = PodOf(*in[workload].object)["metadata"]["labels"];
            bool selects =
                std::all_of(selector.items().begin(), selector.items().end(), [&](const auto& kv) {
                  return labels.contains(kv.key()) && labels[kv.key()] == kv.value();
                });
            if (!selects) continue;
            for (size_t i = 0; i < was["spec"]["ports"].size(); ++i) {
              const Json& port = was["spec"]["ports"][i];
              Json target = port.contains("targetPort") ? port["targetPort"] : port["port"];
              bool by_number = target.is_number() && target.get<int>() == wired.app_port;
              bool by_name =
                  target.is_string() && !wired.entry_name.empty() && target == wired.entry_name;
              if (!by_number && !by_name) continue;
              ++reached;
              EXPECT_EQ(now["spec"]["ports"][i]["targetPort"], wired.port_name)
                  << id << " port " << i;
            }
          }
          EXPECT_GT(reached, 0u) << id << " reaches no wired app port";
        } else {
          ADD_FAILURE() << "unknown directive " << directive;
        }
      }
    }
  }
}

TEST(InjectCasesTest, InjectingTheOutputAgainGivesTheSameBytes) {
  for (const Case& c : LoadCases()) {
    for (const char* mode : {"native", "classic"}) {
      SCOPED_TRACE(c.name + " --mode " + mode);
      Args args = c.args;
      args.insert(args.end(), {"--mode", mode});
      Outcome first = Inject(c.input, args);
      ASSERT_EQ(first.status, 0) << first.err;
      Outcome second = Inject(first.out, args);
      ASSERT_EQ(second.status, 0) << second.err;
      EXPECT_EQ(second.out, first.out);
      EXPECT_EQ(second.err, first.err) << "the same summary each time";
    }
  }
}

TEST(InjectCasesTest, UninjectRestoresTheInput) {
  for (const Case& c : LoadCases()) {
    for (const char* mode : {"native", "classic"}) {
      SCOPED_TRACE(c.name + " --mode " + mode);
      Args args = c.args;
      args.insert(args.end(), {"--mode", mode});
      Outcome wired = Inject(c.input, args);
      ASSERT_EQ(wired.status, 0) << wired.err;
      Outcome restored = Uninject(wired.out);
      ASSERT_EQ(restored.status, 0) << restored.err;
      manifest::Stream before = Parse(c.input);
      manifest::Stream after = Parse(restored.out);
      ASSERT_EQ(after.documents.size(), before.documents.size());
      for (size_t i = 0; i < before.documents.size(); ++i) {
        // Same tree, same key order; a document inject did not change, the same bytes.
        EXPECT_EQ(after.documents[i].value.dump(), before.documents[i].value.dump()) << i;
        if (wired.out.find(before.documents[i].text) != std::string::npos) {
          EXPECT_NE(restored.out.find(before.documents[i].text), std::string::npos) << i;
        }
      }
    }
  }
}

TEST(InjectCasesTest, InjectingAgainWithOtherFlagsRewiresFromTheOriginal) {
  for (const Case& c : LoadCases()) {
    SCOPED_TRACE(c.name);
    Outcome first = Inject(c.input, c.args);
    ASSERT_EQ(first.status, 0) << first.err;
    Args other = c.args;
    other.insert(other.end(), {"--drain-delay", "9s", "--mode", "classic"});
    Outcome second = Inject(first.out, other);
    ASSERT_EQ(second.status, 0) << second.err;
    EXPECT_EQ(second.out, Inject(c.input, other).out) << "as if injected so the first time";
    manifest::Stream rewired = Parse(second.out);
    auto objects = Objects(rewired);
    for (const auto& [directive, rest] : c.expect) {
      if (directive != "wired") continue;
      std::string id = rest.substr(0, rest.find(' '));
      const Json& spec = PodOf(*objects[id].object)["spec"];
      const Json* sidecar = ContainerIn(spec["containers"], "lameduck");
      ASSERT_NE(sidecar, nullptr) << id << ": classic now";
      if (c.input.find("lameduck.dev/drain-delay") == std::string::npos) {  // else that wins
        EXPECT_EQ(ArgValue(*sidecar, "drain-delay"), "9s") << id;
      }
      EXPECT_EQ(ContainerIn(spec["initContainers"], "lameduck"), nullptr) << id;
    }
    Outcome restored = Uninject(second.out);
    manifest::Stream before = Parse(c.input);
    manifest::Stream after = Parse(restored.out);
    ASSERT_EQ(after.documents.size(), before.documents.size());
    for (size_t i = 0; i < before.documents.size(); ++i) {
      EXPECT_EQ(after.documents[i].value.dump(), before.documents[i].value.dump()) << i;
    }
  }
}

// ---- One behaviour at a time.

constexpr std::string_view kWeb = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: example/web:1
          env:
            - name: PORT
              value: "8080"
          ports:
            - name: http
              containerPort: 8080
          readinessProbe:
            httpGet: {path: /healthz, port: http}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
)";

Json Wired(std::string_view input, const Args& args = {}) {
  Outcome outcome = Inject(std::string(input), args);
  EXPECT_EQ(outcome.status, 0) << outcome.err;
  return Parse(outcome.out).documents[0].value;
}

TEST(InjectTest, LameduckListensOnItsOwnPortAndForwardsToTheAppsDeclaredPort) {
  Json pod = Wired(kWeb)["spec"]["template"];
  Json sidecar = Sidecar(pod);
  EXPECT_EQ(ArgValue(sidecar, "listen"), "0.0.0.0:9900");
  EXPECT_EQ(ArgValue(sidecar, "upstream"), "127.0.0.1:8080");
  EXPECT_EQ(ArgValue(sidecar, "admin"), "0.0.0.0:9901");
  EXPECT_EQ(
      sidecar["ports"].dump(),
      R"([{"name":"http","containerPort":9900},{"name":"lameduck-admin","containerPort":9901}])");
  EXPECT_EQ(sidecar["restartPolicy"], "Always");
  EXPECT_EQ(sidecar["readinessProbe"]["httpGet"]["port"], 9901);
  // The app: its port renamed, its probe by name following it, everything else as it was.
  const Json& app = pod["spec"]["containers"][0];
  EXPECT_EQ(app["ports"].dump(), R"([{"name":"app-http","containerPort":8080}])");
  EXPECT_EQ(pod["metadata"]["annotations"]["lameduck.dev/injected"], LAMEDUCK_VERSION);
}

TEST(InjectTest, ProbesThatNameTheRenamedPortFollowIt) {
  // A probe's named port is looked up in its own container: after the app's entry is renamed,
  // "http" would resolve nowhere there. The probe follows the rename, to the same app port.
  Json app = Wired(kWeb)["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(app["readinessProbe"]["httpGet"].dump(), R"({"path":"/healthz","port":"app-http"})");
}

TEST(InjectTest, NumericTargetPortBecomesTheNameWhenThePodsAlreadyResolveIt) {
  Outcome outcome = Inject(std::string(kWeb));
  Json service = Parse(outcome.out).documents[1].value;
  EXPECT_EQ(service["spec"]["ports"][0]["targetPort"], "http");
  EXPECT_TRUE(Contains(outcome.err, "Service web: port 80 targetPort 8080 -> \"http\""));
  EXPECT_TRUE(service["metadata"]["annotations"].contains("lameduck.dev/original"));
}

TEST(InjectTest, AServiceIsLeftWhenAnotherPodItSelectsWouldNotResolveTheName) {
  // Stable and canary behind one Service; the canary's port has no name, so "http" would drop
  // its pods from the Service.
  std::string canary(kWeb.substr(0, kWeb.find("---")));
  auto replace = [&](std::string_view from, std::string_view to) {
    size_t at = canary.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    canary.replace(at, from.size(), to);
  };
  replace("name: web\n", "name: web-canary\n");
  replace("            - name: http\n              containerPort: 8080",
          "            - containerPort: 8080");
  replace("port: http}", "port: 8080}");
  Outcome outcome = Inject(std::string(kWeb) + "---\n" + canary);
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  manifest::Stream stream = Parse(outcome.out);
  EXPECT_EQ(stream.documents[1].value["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_TRUE(Contains(outcome.err,
                       "Service web: port 80 left on 8080: Deployment web-canary, "
                       "which it selects, would not take its traffic by the name"));
  EXPECT_TRUE(Contains(outcome.err, "Deployment web-canary: wired"));
}

TEST(InjectTest, ANameAnotherContainerSharesStaysWithTheAppAndLameduckGetsItsOwn) {
  // Kubernetes takes the first regular container that declares a name: renaming the app's entry
  // would hand "http" to the docs container.
  std::string input(kWeb);
  input.replace(input.find("          readinessProbe:"), 0, "");
  input.replace(input.find("---"), 0,
                "        - name: docs\n          image: example/docs:1\n          ports:\n"
                "            - {name: http, containerPort: 8081}\n");
  Outcome outcome = Inject(input, {"--container", "web"});
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  manifest::Stream stream = Parse(outcome.out);
  Json pod = stream.documents[0].value["spec"]["template"];
  EXPECT_EQ(pod["spec"]["containers"][0]["ports"][0]["name"], "http") << "the app keeps its name";
  EXPECT_EQ(Sidecar(pod)["ports"][0]["name"], "lameduck-http");
  EXPECT_EQ(stream.documents[1].value["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_TRUE(Contains(outcome.err, "is declared by another container too"));
}

TEST(InjectTest, EditsAfterInjectionDoNotConfuseTheUndo) {
  // A person puts a container and a Service port at the top of a wired manifest: re-injecting
  // and uninjecting still find lameduck's entries by name and leave theirs alone.
  Outcome wired = Inject(std::string(kWeb));
  ASSERT_EQ(wired.status, 0);
  manifest::Stream stream = Parse(wired.out);
  Json& deployment = stream.documents[0].value;
  Json shipper =
      Json::parse(R"({"name":"logs","image":"shipper:1","ports":[{"name":"metrics",)"
                  R"("containerPort":9090}],"lifecycle":{"preStop":{"sleep":{"seconds":2}}}})");
  Json& containers = deployment["spec"]["template"]["spec"]["containers"];
  containers.insert(containers.begin(), shipper);
  Json& ports = stream.documents[1].value["spec"]["ports"];
  ports.insert(ports.begin(), Json::parse(R"({"name":"metrics","port":9090,"targetPort":9090})"));
  std::string edited = manifest::Write(stream);

  Outcome restored = Uninject(edited);
  ASSERT_EQ(restored.status, 0) << restored.err;
  manifest::Stream back = Parse(restored.out);
  const Json& spec = back.documents[0].value["spec"]["template"]["spec"];
  EXPECT_EQ(spec["containers"][0].dump(), shipper.dump()) << "theirs untouched";
  EXPECT_EQ(spec["containers"][1]["ports"][0]["name"], "http");
  EXPECT_FALSE(spec["containers"][1].contains("lifecycle"));
  EXPECT_FALSE(spec.contains("volumes"));
  EXPECT_EQ(back.documents[1].value["spec"]["ports"][0]["targetPort"], 9090);
  EXPECT_EQ(back.documents[1].value["spec"]["ports"][1]["targetPort"], 8080);

  Outcome again = Inject(edited);
  ASSERT_EQ(again.status, 0) << again.err;
  manifest::Stream rewired = Parse(again.out);
  const Json& respec = rewired.documents[0].value["spec"]["template"]["spec"];
  EXPECT_EQ(respec["containers"][0]["ports"][0]["name"], "metrics");
  EXPECT_EQ(respec["containers"][1]["ports"][0]["name"], "app-http");
  EXPECT_EQ(respec["initContainers"].size(), 2u);
  EXPECT_EQ(rewired.documents[1].value["spec"]["ports"][0]["targetPort"], 9090);
  EXPECT_EQ(rewired.documents[1].value["spec"]["ports"][1]["targetPort"], "http");
}

TEST(InjectTest, WhatCannotBeRewiredIsKeptWiredNotSilentlyTakenOut) {
  Outcome wired = Inject(std::string(kWeb));
  ASSERT_EQ(wired.status, 0);
  // A typo in an annotation: the workload stays as it came, wired.
  std::string edited = wired.out;
  edited.insert(edited.find("        lameduck.dev/injected:"),
                "        lameduck.dev/drain-delay: \"10 s\"\n");
  Outcome typo = Inject(edited);
  ASSERT_EQ(typo.status, 0);
  EXPECT_EQ(typo.out, edited);
  EXPECT_TRUE(Contains(typo.err,
                       "Deployment web: kept as it came, wired: cannot rewire it: "
                       "annotation lameduck.dev/drain-delay"));
  // The wired Service alone (kubectl get svc -o yaml | lameduck inject): kept as it came.
  std::string service = wired.out.substr(wired.out.find("---"));
  Outcome alone = Inject(service);
  ASSERT_EQ(alone.status, 0);
  EXPECT_EQ(alone.out, service);
  EXPECT_TRUE(Contains(alone.err,
                       "Service web: kept as it came: no workload it selects is in "
                       "the input"));
  // With its workload kept wired beside it, it is kept too, and says why.
  Outcome both = Inject(edited);
  EXPECT_TRUE(Contains(both.err, "Service web: kept as it came: as Deployment web is"));
}

TEST(InjectTest, WhatAPersonChangedAfterInjectionIsTheirs) {
  Outcome wired = Inject(std::string(kWeb));
  ASSERT_EQ(wired.status, 0);
  manifest::Stream stream = Parse(wired.out);
  Json& spec = stream.documents[0].value["spec"]["template"]["spec"];
  spec["terminationGracePeriodSeconds"] = 300;  // a value inject changed
  spec["containers"][0]["readinessProbe"] = {{"tcpSocket", {{"port", 8080}}}};  // one it renamed
  std::string edited = manifest::Write(stream);
  Outcome again = Inject(edited);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_TRUE(Contains(again.err, "terminationGracePeriodSeconds 300 kept"));
  EXPECT_EQ(ArgValue(Sidecar(Parse(again.out).documents[0].value["spec"]["template"]),
                     "termination-grace"),
            "300s");
  Outcome restored = Uninject(edited);
  ASSERT_EQ(restored.status, 0) << restored.err;
  manifest::Stream back_stream = Parse(restored.out);
  const Json& back = back_stream.documents[0].value["spec"]["template"]["spec"];
  EXPECT_EQ(back["terminationGracePeriodSeconds"], 300);
  EXPECT_EQ(back["containers"][0]["readinessProbe"].dump(), R"({"tcpSocket":{"port":8080}})");
  EXPECT_EQ(back["containers"][0]["ports"][0]["name"], "http");
  EXPECT_FALSE(back.contains("initContainers"));
}

TEST(InjectTest, AServicePatchedToLameducksNameAsAdvisedIsRecognisedAndUninjectWarns) {
  std::string unnamed(kWeb);
  unnamed.replace(unnamed.find("            - name: http\n              containerPort: 8080"), 58,
                  "            - containerPort: 8080");
  unnamed.replace(unnamed.find("port: http}"), 11, "port: 8080}");
  Outcome wired = Inject(unnamed);
  ASSERT_EQ(wired.status, 0) << wired.err;
  EXPECT_TRUE(Contains(wired.err,
                       "kubectl patch service web -p '{\"spec\":{\"ports\":[{\"port\":80,"
                       "\"targetPort\":\"http\"}]}}'"));
  // The person runs that patch once the rollout is done; the Service now says "http".
  std::string patched = wired.out;
  patched.replace(patched.rfind("targetPort: 8080"), 16, "targetPort: http");
  Outcome again = Inject(patched);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, patched);
  EXPECT_TRUE(Contains(again.err, "Service web: port 80 targets \"http\": it follows by name"));
  Outcome restored = Uninject(patched);
  EXPECT_TRUE(Contains(restored.err,
                       "Service web: port 80 targets \"http\", which Deployment "
                       "web no longer declares"));
}

TEST(InjectTest, PodsAndReplicaSetsThatBelongToSomethingAreLeftToIt) {
  std::string input = R"(apiVersion: v1
kind: Pod
metadata:
  name: web-7d9f-abcde
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f, uid: x}]
spec:
  containers: [{name: web, image: i, ports: [{name: http, containerPort: 8080}]}]
)";
  Outcome outcome = Inject(input);
  EXPECT_EQ(outcome.out, input);
  EXPECT_TRUE(Contains(outcome.err, "skipped: it belongs to ReplicaSet web-7d9f"));
}

TEST(InjectTest, AFreePortIsChosenWhenTheDefaultsAreTaken) {
  std::string input(kWeb);
  input.replace(input.find("containerPort: 8080"), 19, "containerPort: 9900");
  input.replace(input.find("targetPort: 8080"), 16, "targetPort: 9900");
  Json sidecar = Sidecar(Wired(input)["spec"]["template"]);
  EXPECT_EQ(ArgValue(sidecar, "listen"), "0.0.0.0:9902");
  EXPECT_EQ(ArgValue(sidecar, "upstream"), "127.0.0.1:9900");
  EXPECT_EQ(ArgValue(sidecar, "admin"), "0.0.0.0:9901");
}

TEST(InjectTest, PortOptionsAndAnnotationsChooseLameducksPorts) {
  Json sidecar =
      Sidecar(Wired(kWeb, {"--port", "7000", "--admin-port", "7001"})["spec"]["template"]);
  EXPECT_EQ(ArgValue(sidecar, "listen"), "0.0.0.0:7000");
  EXPECT_EQ(ArgValue(sidecar, "admin"), "0.0.0.0:7001");
  std::string annotated(kWeb);
  annotated.replace(annotated.find("      labels: {app: web}"), 24,
                    "      labels: {app: web}\n      annotations: {lameduck.dev/port: \"7100\"}");
  EXPECT_EQ(ArgValue(Sidecar(Wired(annotated, {"--port", "7000"})["spec"]["template"]), "listen"),
            "0.0.0.0:7100")
      << "the workload's annotation wins over the flag";
}

TEST(InjectTest, ReinjectingWithOtherAnnotationsRewiresFromTheOriginal) {
  Outcome first = Inject(std::string(kWeb));
  ASSERT_EQ(first.status, 0);
  // A person adds an annotation to the wired manifest and injects again.
  std::string edited = first.out;
  size_t at = edited.find("        lameduck.dev/injected:");
  ASSERT_NE(at, std::string::npos) << edited;
  edited.insert(at, "        lameduck.dev/drain-delay: 12s\n");
  Outcome second = Inject(edited, {"--drain-timeout", "40s"});
  ASSERT_EQ(second.status, 0) << second.err;
  Json pod = Parse(second.out).documents[0].value["spec"]["template"];
  Json sidecar = Sidecar(pod);
  EXPECT_EQ(ArgValue(sidecar, "drain-delay"), "12s");
  EXPECT_EQ(ArgValue(sidecar, "drain-timeout"), "40s");
  EXPECT_EQ(pod["spec"]["initContainers"].size(), 2u) << "rewired, not wired twice";
  EXPECT_EQ(pod["spec"]["terminationGracePeriodSeconds"], 12 + 40 + 10 + 5);
  EXPECT_EQ(ArgValue(sidecar, "termination-grace"), "67s");
  EXPECT_EQ(ArgValue(sidecar, "app-exit-timeout"), "10s");
  // Taking it out again leaves the person's annotation and nothing of lameduck's.
  Outcome restored = Uninject(second.out);
  Json back = Parse(restored.out).documents[0].value["spec"]["template"];
  EXPECT_EQ(back["metadata"]["annotations"].dump(), R"({"lameduck.dev/drain-delay":"12s"})");
  EXPECT_FALSE(back["spec"].contains("initContainers"));
  EXPECT_EQ(Parse(restored.out).documents[1].value["spec"]["ports"][0]["targetPort"], 8080);
}

TEST(InjectTest, InjectFalseTakesLameduckOut) {
  Outcome wired = Inject(std::string(kWeb));
  Outcome off = Inject(wired.out, {});
  std::string edited = wired.out;
  edited.insert(edited.find("        lameduck.dev/injected:"),
                "        lameduck.dev/inject: \"false\"\n");
  off = Inject(edited);
  ASSERT_EQ(off.status, 0);
  EXPECT_TRUE(Contains(
      off.err, "Deployment web: skipped: lameduck.dev/inject is false (lameduck taken out)"));
  Json pod = Parse(off.out).documents[0].value["spec"]["template"];
  EXPECT_FALSE(pod["spec"].contains("initContainers"));
  EXPECT_EQ(pod["metadata"]["annotations"].dump(), R"({"lameduck.dev/inject":"false"})");
  EXPECT_EQ(Parse(off.out).documents[1].value["spec"]["ports"][0]["targetPort"], 8080);
}

TEST(InjectTest, ABadAnnotationSkipsItsWorkloadNamingTheAnnotation) {
  std::string input(kWeb);
  input.replace(input.find("      labels: {app: web}"), 24,
                "      labels: {app: web}\n      annotations: {lameduck.dev/drain-delay: soon}");
  Outcome outcome = Inject(input);
  EXPECT_EQ(outcome.status, 0);
  EXPECT_EQ(outcome.out, input);
  EXPECT_TRUE(Contains(outcome.err,
                       "Deployment web: skipped: annotation lameduck.dev/drain-delay: "
                       "invalid duration \"soon\""));
}

TEST(InjectTest, AnExistingExecPreStopRunsAfterTheDrain) {
  std::string input(kWeb);
  input.replace(input.find("          readinessProbe:"), 0,
                "          lifecycle:\n            preStop:\n              exec:\n"
                "                command: [\"/bin/app\", \"shutdown\", \"--grace\"]\n");
  Json app = Wired(input)["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(
      app["lifecycle"]["preStop"]["exec"]["command"].dump(),
      R"(["/lameduck/lameduck","drain","--wait","--admin","127.0.0.1:9901","--timeout","35s","--then","--","/bin/app","shutdown","--grace"])");
}

TEST(InjectTest, AnExistingSleepPreStopSleepsAfterTheDrain) {
  std::string input(kWeb);
  input.replace(input.find("          readinessProbe:"), 0,
                "          lifecycle: {preStop: {sleep: {seconds: 7}}}\n");
  Json spec = Wired(input)["spec"]["template"]["spec"];
  const Json& command = spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"];
  EXPECT_EQ(command[command.size() - 2], "--then-sleep");
  EXPECT_EQ(command[command.size() - 1], "7s");
  EXPECT_EQ(spec["terminationGracePeriodSeconds"], 5 + 25 + 7 + 10 + 5) << "the sleep counts";
}

TEST(InjectTest, AnHttpGetPreStopCannotBeChainedSoTheWorkloadIsLeftAlone) {
  std::string input(kWeb);
  input.replace(input.find("          readinessProbe:"), 0,
                "          lifecycle: {preStop: {httpGet: {path: /quit, port: 8080}}}\n");
  Outcome outcome = Inject(input);
  EXPECT_EQ(outcome.status, 0);
  EXPECT_EQ(outcome.out, input);
  EXPECT_TRUE(Contains(outcome.err,
                       "Deployment web: skipped: container web: its preStop hook is "
                       "not exec or sleep"));
}

TEST(InjectTest, GracePeriodCoversTheDrainAndALongerOneIsKept) {
  Json spec = Wired(kWeb, {"--drain-delay", "3s", "--drain-timeout", "20s", "--app-exit-timeout",
                           "4s"})["spec"]["template"]["spec"];
  EXPECT_EQ(spec["terminationGracePeriodSeconds"], 3 + 20 + 4 + 5);
  std::string input(kWeb);
  input.replace(input.find("      containers:"), 0, "      terminationGracePeriodSeconds: 120\n");
  Outcome outcome = Inject(input);
  EXPECT_EQ(Parse(outcome.out)
                .documents[0]
                .value["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            120);
  EXPECT_TRUE(Contains(outcome.err,
                       "terminationGracePeriodSeconds 120 kept (drain delay 5s + "
                       "drain timeout 25s + app exit 10s + 5s margin = 45s)"));
}

TEST(InjectTest, ClassicModeAppendsLameduckAsAContainerThatWaitsForItsOwnDrain) {
  Json spec = Wired(kWeb, {"--mode", "classic"})["spec"]["template"]["spec"];
  ASSERT_EQ(spec["containers"].size(), 2u);
  const Json& sidecar = spec["containers"][1];
  EXPECT_EQ(sidecar["name"], "lameduck");
  EXPECT_FALSE(sidecar.contains("restartPolicy"));
  EXPECT_EQ(sidecar["lifecycle"]["preStop"]["exec"]["command"][1], "drain");
  EXPECT_EQ(spec["initContainers"].size(), 1u);  // lameduck-install only
}

TEST(InjectTest, JsonInJsonOutAsKubectlPrintsIt) {
  std::string input =
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},)"
      R"("spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":8080}]}]}})";
  Outcome outcome = Inject(input);
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  EXPECT_EQ(outcome.out.substr(0, 30), "{\n    \"apiVersion\": \"v1\",\n    ");
  Json pod = Json::parse(outcome.out);
  EXPECT_EQ(ArgValue(Sidecar(pod), "upstream"), "127.0.0.1:8080");
  EXPECT_TRUE(Contains(outcome.err, "Pod p: wired"));
}

TEST(InjectTest, WhatIsNotHttpIsLeftByteForByteWithOneNoteEach) {
  const std::string input = R"(# Source: chart/templates/redis.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cache}
spec:
  selector: {matchLabels: {app: cache}}
  serviceName: cache
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers:
        - name: redis
          image: redis:7   # pinned
          ports: [{containerPort: 6379}]
---
apiVersion: v1
kind: Pod
metadata: {name: h2}
spec:
  containers:
    - name: h2
      image: h2:1
      ports: [{name: tcp-raw, containerPort: 8080}, {name: udp-stats, containerPort: 8125, protocol: UDP}]
)";
  Outcome outcome = Inject(input);
  EXPECT_EQ(outcome.status, 0);
  EXPECT_EQ(outcome.out, input);
  EXPECT_TRUE(
      Contains(outcome.err, "StatefulSet cache: skipped: no port is plain HTTP/1.1 (6379: Redis)"));
  EXPECT_TRUE(Contains(outcome.err, "8080 \"tcp-raw\": raw TCP"));
  EXPECT_TRUE(Contains(outcome.err, "8125 \"udp-stats\": UDP"));
}

TEST(InjectTest, AGrpcPortIsFrontedOverH2cWhateverSaysItIsGrpc) {
  // Istio's convention: the Service port's name says the protocol (grpc-api), the pod's is bare.
  std::string by_mesh_name = R"(apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: p}}
spec:
  containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: p}
spec:
  selector: {app: p}
  ports: [{name: grpc-api, port: 8080}]
)";
  EXPECT_EQ(ArgValue(Sidecar(Wired(by_mesh_name)), "upstream-protocol"), "h2c");
  std::string by_app_protocol = R"(apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: p}}
spec:
  containers: [{name: c, image: i, ports: [{name: api, containerPort: 9000}]}]
---
apiVersion: v1
kind: Service
metadata: {name: p}
spec:
  selector: {app: p}
  ports: [{port: 80, targetPort: api, appProtocol: kubernetes.io/h2c}]
)";
  EXPECT_EQ(ArgValue(Sidecar(Wired(by_app_protocol)), "upstream-protocol"), "h2c");
  std::string by_probe = R"(apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - name: c
      image: i
      ports: [{containerPort: 7000}]
      readinessProbe: {grpc: {port: 7000}}
)";
  Json pod = Wired(by_probe);
  EXPECT_EQ(ArgValue(Sidecar(pod), "upstream-protocol"), "h2c");
  EXPECT_EQ(pod["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"], 7000)
      << "gRPC probes stay on the app";
  std::string plain = R"(apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]
)";
  EXPECT_EQ(ArgValue(Sidecar(Wired(plain)), "upstream-protocol"), "") << "HTTP/1.1: the default";
}

TEST(InjectTest, AnAppPortGivenByFlagWiresAPortNobodyDeclared) {
  std::string input = R"(apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: i}]
)";
  EXPECT_TRUE(Contains(Inject(input).err, "it declares no port: say which"));
  Json pod = Wired(input, {"--app-port", "3000"});
  EXPECT_EQ(ArgValue(Sidecar(pod), "upstream"), "127.0.0.1:3000");
  EXPECT_FALSE(pod["spec"]["containers"][0].contains("ports")) << "the app is not given a port";
}

TEST(InjectTest, WiredByHandIsLeftAloneAndADamagedRecordIsNotApplied) {
  std::string by_hand = R"(apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: i, ports: [{containerPort: 8080}]}, {name: lameduck, image: x}]
)";
  Outcome outcome = Inject(by_hand);
  EXPECT_EQ(outcome.out, by_hand);
  EXPECT_TRUE(Contains(outcome.err, "already has a container named lameduck"));

  std::string damaged = R"(apiVersion: v1
kind: Pod
metadata: {name: p, annotations: {lameduck.dev/original: '[{"op":"remove","path":"/nope/0"}]'}}
spec:
  containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]
)";
  for (const Outcome& result : {Inject(damaged), Uninject(damaged)}) {
    EXPECT_EQ(result.status, 0);
    EXPECT_EQ(result.out, damaged);
    EXPECT_TRUE(Contains(result.err, "its lameduck.dev/original annotation does not apply"));
  }
}

TEST(InjectTest, ServicesInOtherNamespacesOrSelectingOtherPodsAreNotTouched) {
  std::string input(kWeb);
  input += R"(---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: elsewhere}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
)";
  input.replace(input.find("  name: web\nspec:\n  selector:\n    matchLabels"), 11,
                "  name: web\n  namespace: shop");
  Outcome outcome = Inject(input);
  ASSERT_EQ(outcome.status, 0);
  manifest::Stream stream = Parse(outcome.out);
  EXPECT_EQ(stream.documents[2].value["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_TRUE(Contains(outcome.out, stream.documents[2].text));
}

TEST(InjectTest, KustomizeResourceListItemsAreWired) {
  std::string input = R"(apiVersion: config.kubernetes.io/v1
kind: ResourceList
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p}
    spec:
      containers: [{name: c, image: i, ports: [{name: http, containerPort: 8080}]}]
functionConfig: {apiVersion: example.com/v1, kind: LameDuck, metadata: {name: x}}
)";
  Outcome outcome = Inject(input);
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  Json list = Parse(outcome.out).documents[0].value;
  EXPECT_EQ(list["kind"], "ResourceList");
  EXPECT_EQ(ArgValue(Sidecar(list["items"][0]), "upstream"), "127.0.0.1:8080");
  EXPECT_EQ(list["functionConfig"]["kind"], "LameDuck");
}

TEST(InjectTest, UnreadableInputIsRefusedWithOneLineAndNothingWritten) {
  for (const std::string& input :
       {std::string(""), std::string("  \n"), std::string("{\"kind\":"), std::string("a: [1, 2\n"),
        std::string("just words\n"), std::string("[1, 2]"), std::string("\"text\"")}) {
    SCOPED_TRACE(input);
    Outcome outcome = Inject(input);
    EXPECT_EQ(outcome.status, 1);
    EXPECT_EQ(outcome.out, "");
    EXPECT_TRUE(IsOneLine(outcome.err));
    EXPECT_TRUE(Contains(outcome.err, "lameduck inject: "));
  }
}

// Found by fuzz_inject (tests/fuzz/regressions/fuzz_inject/number-overflow-out-of-range).
TEST(InjectTest, ANumberTooLargeForJsonIsRefusedNotACrash) {
  Outcome outcome = Inject("2312e1116");
  EXPECT_EQ(outcome.status, 1);
  EXPECT_TRUE(Contains(outcome.err, "lameduck inject"));
  EXPECT_EQ(outcome.out, "");
}

TEST(InjectTest, BadUsageExitsTwoNamingTheOption) {
  struct Bad {
    Args args;
    std::string message;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{"--port", "80"}, "--port: invalid port \"80\" (use a number from 1024 to 65535"},
           {{"--port", "9900", "--admin-port", "9900"}, "--admin-port: 9900 is also --port"},
           {{"--app-port", "0"}, "--app-port: invalid port \"0\""},
           {{"--mode", "sideways"}, "--mode: invalid mode \"sideways\""},
           {{"--drain-timeout", "0s"}, "--drain-timeout: must be more than 0"},
           {{"--drain-delay", "5"}, "--drain-delay: "},
           {{"--image="}, "--image: must not be empty"},
           {{"--dran-delay", "5s"}, "unknown option --dran-delay (did you mean --drain-delay?)"},
           {{"deploy.yaml"}, "unexpected argument \"deploy.yaml\" (manifests come on stdin)"},
       }) {
    SCOPED_TRACE(bad.args[0]);
    Outcome outcome = Inject(std::string(kWeb), bad.args);
    EXPECT_EQ(outcome.status, 2);
    EXPECT_EQ(outcome.out, "");
    EXPECT_TRUE(IsOneLine(outcome.err));
    EXPECT_TRUE(Contains(outcome.err, "lameduck inject: " + bad.message));
  }
  Outcome extra = Uninject(std::string(kWeb), {"--mode", "classic"});
  EXPECT_EQ(extra.status, 2);
  EXPECT_TRUE(IsOneLine(extra.err));
}

TEST(InjectTest, HelpPrintsUsage) {
  for (const char* flag : {"--help", "-h"}) {
    Outcome outcome = Inject("", {flag});
    EXPECT_EQ(outcome.status, 0);
    EXPECT_EQ(outcome.out, InjectUsageText());
    EXPECT_TRUE(Contains(outcome.out, "--post-renderer"));
    EXPECT_TRUE(Contains(outcome.out, "lameduck.dev/inject"));
  }
  Outcome uninject = Uninject("", {"--help"});
  EXPECT_EQ(uninject.status, 0);
  EXPECT_TRUE(Contains(uninject.out, "Usage: lameduck uninject"));
}

}  // namespace
}  // namespace lameduck::coordinator
