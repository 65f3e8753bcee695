// `lameduck inject` over kubectl-shaped fixtures (inject_fixtures/): the wiring it adds, the
// fields it must keep, byte-identical re-injection, each refusal and bad usage; and
// `lameduck install` copying the running binary.
//
// With LAMEDUCK_INJECT_OUT set, every injected fixture is also written there
// (<fixture>-native.json, <fixture>-classic.json) for the manifest validation test.
#include "coordinator/cli/inject.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace lameduck::coordinator {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using Args = std::vector<std::string>;

const fs::path kFixtures = fs::path(__FILE__).parent_path() / "inject_fixtures";

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

std::string Fixture(std::string_view name) {
  return ReadFile(kFixtures / (std::string(name) + ".json"));
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

// The fixture injected (status 0 asserted by the caller through the returned document).
Json Injected(std::string_view fixture, const Args& args = {}) {
  Outcome outcome = Inject(Fixture(fixture), args);
  EXPECT_EQ(outcome.status, 0) << outcome.err;
  EXPECT_EQ(outcome.err, "");
  return outcome.status == 0 ? Json::parse(outcome.out) : Json();
}

// The pod spec of the fixture (a Deployment, StatefulSet or DaemonSet) injected.
Json PodSpec(std::string_view fixture, const Args& args = {}) {
  return Injected(fixture, args)["spec"]["template"]["spec"];
}

// A container of a list by name; fails the test when it is missing.
const Json& ContainerNamed(const Json& list, std::string_view name) {
  for (const Json& container : list) {
    if (container.value("name", "") == name) return container;
  }
  ADD_FAILURE() << "no container " << name << " in " << list.dump();
  static const Json kNone = Json::object();
  return kNone;
}

std::vector<std::string> Names(const Json& list) {
  std::vector<std::string> names;
  for (const Json& entry : list) names.push_back(entry.value("name", ""));
  return names;
}

std::vector<std::string> Keys(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.push_back(key);
  return keys;
}

const Json kHardened = Json::parse(R"({
  "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
  "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
  "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})");

// ---- The native wiring, on the Deployment.

TEST(InjectTest, AppendsInstallAndNativeSidecarAfterTheExistingInitContainers) {
  Json pod = PodSpec("deployment");
  EXPECT_EQ(Names(pod["initContainers"]),
            (std::vector<std::string>{"migrate", "lameduck-install", "lameduck"}));
  EXPECT_EQ(Names(pod["containers"]), std::vector<std::string>{"web"});
  EXPECT_EQ(pod["volumes"],
            Json::parse(R"([{"name": "lameduck", "emptyDir": {"sizeLimit": "16Mi"}}])"));
}

TEST(InjectTest, InstallContainerCopiesTheBinaryIntoTheSharedVolume) {
  Json pod = PodSpec("deployment");
  Json expected = Json::parse(R"({
    "name": "lameduck-install",
    "image": "ghcr.io/lameduck/lameduck:0.1.0",
    "args": ["install", "/run/lameduck/lameduck"],
    "volumeMounts": [{"name": "lameduck", "mountPath": "/run/lameduck"}],
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                  "limits": {"cpu": "10m", "memory": "16Mi"}}})");
  expected["securityContext"] = kHardened;
  EXPECT_EQ(ContainerNamed(pod["initContainers"], "lameduck-install"), expected);
}

TEST(InjectTest, SidecarListensOnTheAppsPortAndOwnsReadiness) {
  Json pod = PodSpec("deployment");
  Json expected = Json::parse(R"({
    "name": "lameduck",
    "image": "ghcr.io/lameduck/lameduck:0.1.0",
    "restartPolicy": "Always",
    "args": ["--listen=0.0.0.0:8080", "--upstream=127.0.0.1:3000", "--admin=0.0.0.0:9901",
             "--admin-socket=/run/lameduck/admin.sock", "--drain-delay=5s",
             "--drain-timeout=25s"],
    "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"},
              {"name": "lameduck-admin", "containerPort": 9901}],
    "readinessProbe": {"httpGet": {"path": "/ready", "port": 9901},
                       "periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1},
    "startupProbe": {"httpGet": {"path": "/live", "port": 9901},
                     "periodSeconds": 1, "failureThreshold": 30},
    "livenessProbe": {"httpGet": {"path": "/live", "port": 9901},
                      "periodSeconds": 10, "failureThreshold": 3},
    "volumeMounts": [{"name": "lameduck", "mountPath": "/run/lameduck"}],
    "resources": {"requests": {"cpu": "50m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}})");
  expected["securityContext"] = kHardened;
  EXPECT_EQ(ContainerNamed(pod["initContainers"], "lameduck"), expected);
}

TEST(InjectTest, AppGetsTheVolumeAndAPreStopThatDrainsFirst) {
  Json app = PodSpec("deployment")["containers"][0];
  EXPECT_EQ(app["volumeMounts"],
            Json::parse(R"([{"name": "lameduck", "mountPath": "/lameduck", "readOnly": true}])"));
  EXPECT_EQ(app["lifecycle"], Json::parse(R"({"preStop": {"exec": {"command": [
              "/lameduck/lameduck", "drain", "--wait", "--admin", "127.0.0.1:9901",
              "--timeout", "35s"]}}})"));
}

TEST(InjectTest, ServicePortMovesToLameduckAndOtherPortsStayWithTheApp) {
  Json app = PodSpec("deployment")["containers"][0];
  EXPECT_EQ(app["ports"],
            Json::parse(R"([{"containerPort": 9090, "name": "metrics", "protocol": "TCP"}])"));
}

TEST(InjectTest, AppProbesOnTheTakenOverPortMoveToTheAppPort) {
  Json input = Json::parse(Fixture("deployment"))["spec"]["template"]["spec"]["containers"][0];
  Json app = PodSpec("deployment", {"--app-port", "3100"})["containers"][0];
  EXPECT_EQ(app["readinessProbe"]["httpGet"]["port"], 3100);  // was 8080
  EXPECT_EQ(app["livenessProbe"]["httpGet"]["port"], 3100);   // was "http", the moved name
  EXPECT_EQ(app["startupProbe"], input["startupProbe"]);      // on "metrics": not ours
  app["readinessProbe"]["httpGet"]["port"] = 8080;            // nothing else about them changed
  EXPECT_EQ(app["readinessProbe"], input["readinessProbe"]);
}

TEST(InjectTest, AnnotatesThePodTemplate) {
  Json template_metadata = Injected("deployment")["spec"]["template"]["metadata"];
  EXPECT_EQ(template_metadata["annotations"], Json::parse(R"({"lameduck.dev/injected": "0.1.0"})"));
  EXPECT_EQ(template_metadata["labels"], Json::parse(R"({"app.kubernetes.io/name": "web"})"));
}

TEST(InjectTest, KeepsEveryFieldItDoesNotWireInPlaceAndInOrder) {
  Json input = Json::parse(Fixture("deployment"));
  Json output = Injected("deployment");
  EXPECT_EQ(Keys(output), Keys(input));
  EXPECT_EQ(output["metadata"], input["metadata"]);  // managedFields, resourceVersion, uid
  EXPECT_EQ(output["status"], input["status"]);
  Json input_pod = input["spec"]["template"]["spec"];
  Json output_pod = output["spec"]["template"]["spec"];
  EXPECT_EQ(output_pod["initContainers"][0], input_pod["initContainers"][0]);
  // The pod spec's own keys keep their order; the volumes it lacked come last.
  std::vector<std::string> keys = Keys(output_pod);
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.end() - 1), Keys(input_pod));
  EXPECT_EQ(keys.back(), "volumes");
  for (std::string_view key : {"env", "resources", "image", "imagePullPolicy"}) {
    EXPECT_EQ(output_pod["containers"][0][key], input_pod["containers"][0][key]) << key;
  }
  input["spec"].erase("template");
  output["spec"].erase("template");
  EXPECT_EQ(output["spec"], input["spec"]);
}

// The Deployment as a newer API server would give it, with fields this build has never heard of
// at every level it edits. (Not in the fixture itself: that one is checked against the current
// schema by the manifest validation test.)
TEST(InjectTest, KeepsFieldsItHasNeverHeardOfWhereTheyWere) {
  Json input = Json::parse(Fixture("deployment"));
  Json future = Json::parse(R"({"mode": "Strict", "values": [1, 2.5, "three", null]})");
  Json& pod = input["spec"]["template"]["spec"];
  pod["someFutureField"] = future;
  pod["containers"][0]["someFutureField"] = future;
  pod["containers"][0]["ports"][0]["someFutureField"] = future;
  pod["containers"][0]["readinessProbe"]["someFutureField"] = future;
  input["spec"]["template"]["metadata"]["someFutureField"] = future;
  input["someFutureField"] = future;
  Outcome outcome = Inject(input.dump(4));
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  Json output = Json::parse(outcome.out);
  Json& wired = output["spec"]["template"]["spec"];
  EXPECT_EQ(output["someFutureField"], future);
  EXPECT_EQ(output["spec"]["template"]["metadata"]["someFutureField"], future);
  EXPECT_EQ(wired["someFutureField"], future);
  EXPECT_EQ(wired["containers"][0]["someFutureField"], future);
  EXPECT_EQ(wired["containers"][0]["readinessProbe"]["someFutureField"], future);
  // The port moved to lameduck with everything on it.
  EXPECT_EQ(ContainerNamed(wired["initContainers"], "lameduck")["ports"][0]["someFutureField"],
            future);
  EXPECT_EQ(Keys(output), Keys(input));
  EXPECT_EQ(Inject(outcome.out).out, outcome.out);
}

TEST(InjectTest, WritesJsonAsKubectlDoes) {
  Outcome outcome = Inject(Fixture("deployment"));
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  EXPECT_TRUE(outcome.out.starts_with("{\n    \"apiVersion\": \"apps/v1\",\n"));
  EXPECT_TRUE(outcome.out.ends_with("}\n"));
}

// ---- The grace period and durations.

TEST(InjectTest, GracePeriodIsDelayPlusTimeoutPlusAppExitPlusFiveSeconds) {
  // The fixture's 30 is too short for 5s + 25s + 10s + 5s.
  EXPECT_EQ(PodSpec("deployment")["terminationGracePeriodSeconds"], 45);
  // Fractions round up: 1.5s + 40s + 2s = 43.5s, so 44 + 5.
  Json pod = PodSpec(
      "deployment", {"--drain-delay=1500ms", "--drain-timeout", "40s", "--app-exit-timeout", "2s"});
  EXPECT_EQ(pod["terminationGracePeriodSeconds"], 49);
}

TEST(InjectTest, GracePeriodIsAddedWhenAbsent) {
  Json pod = PodSpec("no-port", {"--port", "8080"});
  EXPECT_EQ(pod["terminationGracePeriodSeconds"], 45);
}

TEST(InjectTest, LongerGracePeriodIsKept) {
  EXPECT_EQ(PodSpec("statefulset")["terminationGracePeriodSeconds"], 120);
  // 1s + 10s + 1s + 5s = 17s is shorter than the Deployment's 30.
  Json pod =
      PodSpec("deployment", {"--drain-delay=1s", "--drain-timeout=10s", "--app-exit-timeout=1s"});
  EXPECT_EQ(pod["terminationGracePeriodSeconds"], 30);
}

TEST(InjectTest, DurationsReachLameduckAndBoundThePreStopWait) {
  Json pod = PodSpec("deployment", {"--drain-delay", "1500ms", "--drain-timeout", "2m"});
  Json args = ContainerNamed(pod["initContainers"], "lameduck")["args"];
  EXPECT_EQ(args[4], "--drain-delay=1500ms");
  EXPECT_EQ(args[5], "--drain-timeout=120s");
  // drain --wait gives up after 120s by default: too soon for this drain.
  Json command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"];
  EXPECT_EQ(command.back(), "126500ms");
}

TEST(InjectTest, ImageAndPortsComeFromTheOptions) {
  Json pod = PodSpec("deployment", {"--image=registry.example.com/lameduck:dev", "--port", "9090",
                                    "--app-port", "3001"});
  const Json& sidecar = ContainerNamed(pod["initContainers"], "lameduck");
  EXPECT_EQ(sidecar["image"], "registry.example.com/lameduck:dev");
  EXPECT_EQ(ContainerNamed(pod["initContainers"], "lameduck-install")["image"],
            "registry.example.com/lameduck:dev");
  EXPECT_EQ(sidecar["args"][0], "--listen=0.0.0.0:9090");
  EXPECT_EQ(sidecar["args"][1], "--upstream=127.0.0.1:3001");
  EXPECT_EQ(sidecar["ports"][0]["name"], "metrics");
  // The probes on 8080 are no longer on the taken-over port; the one on "metrics" is.
  EXPECT_EQ(pod["containers"][0]["readinessProbe"]["httpGet"]["port"], 8080);
  EXPECT_EQ(pod["containers"][0]["startupProbe"]["tcpSocket"]["port"], 3001);
}

// ---- The other kinds.

TEST(InjectTest, StatefulSetOnALowPortGetsTheUnprivilegedPortSysctl) {
  Json output = Injected("statefulset");
  Json pod = output["spec"]["template"]["spec"];
  // lameduck runs as 65532 without capabilities: port 80 needs the pod's sysctl.
  EXPECT_EQ(pod["securityContext"], Json::parse(R"({"sysctls": [
              {"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}]})"));
  EXPECT_EQ(ContainerNamed(pod["initContainers"], "lameduck")["ports"][0],
            Json::parse(R"({"containerPort": 80, "name": "web", "protocol": "TCP"})"));
  EXPECT_FALSE(pod["containers"][0].contains("ports"));
  EXPECT_EQ(pod["containers"][0]["volumeMounts"][1],
            Json::parse(R"({"name": "lameduck", "mountPath": "/lameduck", "readOnly": true})"));
  EXPECT_EQ(output["spec"]["volumeClaimTemplates"],
            Json::parse(Fixture("statefulset"))["spec"]["volumeClaimTemplates"]);
}

TEST(InjectTest, LowPortKeepsALowerUnprivilegedPortSysctlAndRefusesHostNetwork) {
  std::string pod = R"({"kind": "Pod", "metadata": {"name": "p"}, "spec": {
      "containers": [{"name": "app", "ports": [{"containerPort": 443}]}],
      "securityContext": {"runAsUser": 1000, "sysctls": [
          {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}}})";
  Outcome outcome = Inject(pod);
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  EXPECT_EQ(Json::parse(outcome.out)["spec"]["securityContext"],
            Json::parse(pod)["spec"]["securityContext"]);

  std::string host_network = R"({"kind": "Pod", "metadata": {"name": "p"}, "spec": {
      "hostNetwork": true, "containers": [{"name": "app", "ports": [{"containerPort": 80}]}]}})";
  outcome = Inject(host_network);
  EXPECT_EQ(outcome.status, 1);
  EXPECT_TRUE(Contains(outcome.err, "cannot listen on port 80 in a hostNetwork pod"));
}

TEST(InjectTest, DaemonSetHostPortMovesWithThePortAndTcpProbeIsRetargeted) {
  Json pod = PodSpec("daemonset");
  EXPECT_EQ(ContainerNamed(pod["initContainers"], "lameduck")["ports"][0],
            Json::parse(R"({"containerPort": 8080, "hostPort": 8080, "name": "ingest",
                            "protocol": "TCP"})"));
  EXPECT_EQ(pod["containers"][0]["livenessProbe"]["tcpSocket"]["port"], 3000);
  EXPECT_EQ(Names(pod["volumes"]), (std::vector<std::string>{"spool", "lameduck"}));
  EXPECT_EQ(Injected("daemonset")["spec"]["template"]["metadata"]["annotations"],
            Json::parse(R"({"prometheus.io/scrape": "false", "lameduck.dev/injected": "0.1.0"})"));
}

TEST(InjectTest, BarePodIsWiredInItsOwnSpecAndKeepsItsPostStart) {
  Json input = Json::parse(Fixture("pod"));
  Json output = Injected("pod");
  Json app = output["spec"]["containers"][0];
  EXPECT_EQ(app["lifecycle"]["postStart"],
            input["spec"]["containers"][0]["lifecycle"]["postStart"]);
  EXPECT_TRUE(app["lifecycle"].contains("preStop"));
  // An unnamed port is named "http" on lameduck.
  EXPECT_EQ(ContainerNamed(output["spec"]["initContainers"], "lameduck")["ports"][0],
            Json::parse(R"({"containerPort": 5678, "protocol": "TCP", "name": "http"})"));
  EXPECT_EQ(output["metadata"]["annotations"],
            Json::parse(R"({"lameduck.dev/injected": "0.1.0"})"));
  EXPECT_EQ(output["status"], input["status"]);
}

TEST(InjectTest, ListWiresEveryItem) {
  Json output = Injected("list");
  ASSERT_EQ(output["items"].size(), 2u);
  for (const Json& item : output["items"]) {
    const Json& pod = item["spec"]["template"]["spec"];
    EXPECT_EQ(ContainerNamed(pod["initContainers"], "lameduck")["restartPolicy"], "Always")
        << item["kind"];
  }
  EXPECT_EQ(output["metadata"], Json::parse(R"({"resourceVersion": ""})"));
}

TEST(InjectTest, NamedContainerIsTheAppAmongSeveral) {
  Json pod = PodSpec("two-containers", {"--container", "checkout"});
  EXPECT_EQ(Names(pod["containers"]), (std::vector<std::string>{"cloud-sql-proxy", "checkout"}));
  EXPECT_TRUE(pod["containers"][1]["lifecycle"].contains("preStop"));
  EXPECT_EQ(pod["containers"][1]["readinessProbe"]["httpGet"]["port"], 3000);
  EXPECT_EQ(ContainerNamed(pod["initContainers"], "lameduck")["args"][0], "--listen=0.0.0.0:8000");
}

TEST(InjectTest, OtherContainersAlsoWaitForTheDrainBeforeTheirSigterm) {
  Json pod = PodSpec("two-containers", {"--container", "checkout"});
  const Json& proxy = pod["containers"][0];  // the app's database: it must outlive the drain
  const Json& app = pod["containers"][1];
  EXPECT_EQ(proxy["lifecycle"], app["lifecycle"]);
  EXPECT_EQ(proxy["volumeMounts"], app["volumeMounts"]);
  EXPECT_EQ(
      proxy["args"],
      Json::parse(Fixture("two-containers"))["spec"]["template"]["spec"]["containers"][0]["args"]);
}

TEST(InjectTest, OtherContainersOwnPreStopIsLeftAlone) {
  Json input = Json::parse(Fixture("two-containers"));
  Json hook = Json::parse(R"({"preStop": {"exec": {"command": ["sleep", "20"]}}})");
  input["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = hook;
  Outcome outcome = Inject(input.dump(), {"--container", "checkout"});
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  Json proxy = Json::parse(outcome.out)["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(proxy["lifecycle"], hook);
  EXPECT_FALSE(proxy.contains("volumeMounts"));
}

TEST(InjectTest, PortOptionWiresAnAppThatDeclaresNone) {
  Json pod = PodSpec("no-port", {"--port", "8080", "--app-port", "3000"});
  EXPECT_EQ(ContainerNamed(pod["initContainers"], "lameduck")["ports"][0],
            Json::parse(R"({"name": "http", "containerPort": 8080})"));
}

// ---- Classic mode.

TEST(InjectTest, ClassicModeAppendsLameduckAsAContainerWithItsOwnPreStop) {
  Json pod = PodSpec("deployment", {"--mode", "classic"});
  EXPECT_EQ(Names(pod["initContainers"]),
            (std::vector<std::string>{"migrate", "lameduck-install"}));
  EXPECT_EQ(Names(pod["containers"]), (std::vector<std::string>{"web", "lameduck"}));
  Json sidecar = pod["containers"][1];
  EXPECT_FALSE(sidecar.contains("restartPolicy"));
  EXPECT_EQ(sidecar["lifecycle"], Json::parse(R"({"preStop": {"exec": {"command": [
              "/lameduck", "drain", "--wait", "--admin-socket", "/run/lameduck/admin.sock",
              "--timeout", "35s"]}}})"));
  // Everything else is the native sidecar's.
  Json native = ContainerNamed(PodSpec("deployment")["initContainers"], "lameduck");
  native.erase("restartPolicy");
  sidecar.erase("lifecycle");
  EXPECT_EQ(sidecar, native);
  EXPECT_TRUE(pod["containers"][0]["lifecycle"].contains("preStop"));
  EXPECT_EQ(pod["terminationGracePeriodSeconds"], 45);
}

// ---- Idempotency, and the outputs for the manifest validation test.

struct Case {
  std::string fixture;
  Args args;
};

const std::vector<Case> kWireable = {
    {"deployment", {}},
    {"statefulset", {}},
    {"daemonset", {}},
    {"pod", {}},
    {"list", {}},
    {"two-containers", {"--container", "checkout"}},
    {"no-port", {"--port", "8080", "--app-port", "3000"}},
};

TEST(InjectTest, SecondInjectionIsByteIdenticalForEveryFixtureAndMode) {
  const char* out_dir = std::getenv("LAMEDUCK_INJECT_OUT");
  if (out_dir != nullptr) fs::create_directories(out_dir);
  for (const Case& wireable : kWireable) {
    for (std::string mode : {"native", "classic"}) {
      SCOPED_TRACE(wireable.fixture + " " + mode);
      Args args = wireable.args;
      args.insert(args.end(), {"--mode", mode});
      Outcome first = Inject(Fixture(wireable.fixture), args);
      ASSERT_EQ(first.status, 0) << first.err;
      Outcome second = Inject(first.out, args);
      ASSERT_EQ(second.status, 0) << second.err;
      EXPECT_EQ(second.out, first.out);
      EXPECT_EQ(second.err, "");
      // Another mode or other options leave an injected object alone too.
      EXPECT_EQ(Inject(first.out, {"--mode", mode == "native" ? "classic" : "native"}).out,
                first.out);
      if (out_dir != nullptr) {
        std::ofstream(fs::path(out_dir) / (wireable.fixture + "-" + mode + ".json")) << first.out;
      }
    }
  }
}

// ---- Refusals: exit 1, one line on stderr, nothing on stdout.

struct Refusal {
  std::string input;
  Args args;
  std::string message;
};

TEST(InjectTest, RefusesWhatItCannotWireWithOneLineSayingWhatToDo) {
  std::string list_with_service = R"({"apiVersion": "v1", "kind": "List", "items": [)" +
                                  Fixture("deployment") + "," + Fixture("service") + "]}";
  const std::vector<Refusal> refusals = {
      {Fixture("prestop"),
       {},
       "Deployment web: container web already has a preStop hook: remove it, or chain it "
       "yourself after /lameduck/lameduck drain --wait"},
      {Fixture("no-port"),
       {},
       "Deployment worker: no container port to take over: pass --port and --app-port"},
      {Fixture("two-containers"),
       {},
       "Deployment checkout: several containers: name the app with --container (one of "
       "cloud-sql-proxy, checkout)"},
      {Fixture("two-containers"),
       {"--container", "web"},
       "no container named web (containers: cloud-sql-proxy, checkout)"},
      {Fixture("service"),
       {},
       "Service web: cannot wire a Service: give a Deployment, StatefulSet, DaemonSet or Pod, "
       "or a List of them"},
      {list_with_service, {}, "items[1] (Service web): cannot wire a Service"},
      {"apiVersion: apps/v1\nkind: Deployment\n", {}, "stdin is not JSON"},
      {"{\"kind\": \"Deployment\",", {}, "stdin is not JSON"},
      {"", {}, "stdin is empty"},
      {"[1, 2]", {}, "not an object"},
      {Fixture("deployment"),
       {"--app-port", "9090"},
       "container web already declares port 9090, where the app is to listen: pass --app-port"},
      {R"({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
           {"name": "app", "ports": [{"containerPort": 3000}]}]}})",
       {},
       "Pod p: container app's port 3000 is the one lameduck takes over, so the app cannot keep "
       "it: pass --app-port"},
      {R"({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": {"name": "app"}}})",
       {},
       "Pod p: spec.containers is not a list"},
      {R"({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "app",
           "ports": [{"containerPort": 8080}]}], "volumes": [{"name": "lameduck"}]}})",
       {},
       "the pod already has a volume named lameduck: rename it"},
  };
  for (const Refusal& refusal : refusals) {
    SCOPED_TRACE(refusal.message);
    Outcome outcome = Inject(refusal.input, refusal.args);
    EXPECT_EQ(outcome.status, 1);
    EXPECT_EQ(outcome.out, "");
    EXPECT_TRUE(IsOneLine(outcome.err));
    EXPECT_TRUE(outcome.err.starts_with("lameduck inject: ")) << outcome.err;
    EXPECT_TRUE(Contains(outcome.err, refusal.message));
  }
}

// ---- Bad usage: exit 2, one line naming the option, before stdin is read.

TEST(InjectTest, BadUsageExitsTwoNamingTheOption) {
  const std::vector<std::pair<Args, std::string>> cases = {
      {{"--bogus"}, "unknown option --bogus"},
      {{"--port"}, "--port: missing value"},
      {{"--port", "--app-port", "3000"}, "--port: missing value"},
      {{"--port", "http"}, "--port: invalid port \"http\""},
      {{"--port=70000"}, "--port: invalid port \"70000\""},
      {{"--app-port", "0"}, "--app-port: invalid port \"0\""},
      {{"--port", "9901"}, "--port: 9901 is lameduck's admin port"},
      {{"--port", "8080", "--app-port", "8080"}, "--app-port: 8080 is both"},
      {{"--port", "3000"}, "--port: 3000 is both"},
      {{"--drain-delay", "5"}, "--drain-delay: invalid duration \"5\""},
      {{"--drain-timeout=0s"}, "--drain-timeout: must be more than 0"},
      {{"--app-exit-timeout", "soon"}, "--app-exit-timeout: invalid duration"},
      {{"--mode", "sidecar"}, "--mode: invalid mode \"sidecar\" (use native or classic)"},
      {{"--image="}, "--image: must not be empty"},
      {{"deployment.json"}, "unexpected argument \"deployment.json\""},
  };
  for (const auto& [args, message] : cases) {
    SCOPED_TRACE(message);
    Outcome outcome = Inject(Fixture("deployment"), args);
    EXPECT_EQ(outcome.status, 2);
    EXPECT_EQ(outcome.out, "");
    EXPECT_TRUE(IsOneLine(outcome.err));
    EXPECT_TRUE(Contains(outcome.err, "lameduck inject: " + message));
  }
}

TEST(InjectTest, HelpPrintsUsage) {
  Outcome outcome = Inject("", {"--help"});
  EXPECT_EQ(outcome.status, 0);
  EXPECT_EQ(outcome.out, InjectUsageText());
  EXPECT_TRUE(Contains(outcome.out, "--mode native|classic"));
}

// ---- lameduck install.

class InstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lameduck-install-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

TEST_F(InstallTest, CopiesTheRunningBinaryExecutable) {
  fs::path target = dir_ / "lameduck";
  std::ostringstream err;
  ASSERT_EQ(RunInstall({target.string()}, err), 0) << err.str();
  EXPECT_EQ(err.str(), "");
  EXPECT_TRUE(ReadFile(target) == ReadFile("/proc/self/exe")) << "the copy differs";
  struct stat info {};
  ASSERT_EQ(stat(target.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0755u);
  EXPECT_FALSE(fs::exists(dir_ / "lameduck.tmp"));
}

TEST_F(InstallTest, ReplacesAnExistingFile) {
  fs::path target = dir_ / "lameduck";
  std::ofstream(target) << "old";
  std::ostringstream err;
  ASSERT_EQ(RunInstall({target.string()}, err), 0) << err.str();
  EXPECT_EQ(fs::file_size(target), fs::file_size("/proc/self/exe"));
}

TEST_F(InstallTest, FailsWithOneLineWhenItCannotWrite) {
  fs::path target = dir_ / "missing" / "lameduck";
  std::ostringstream err;
  EXPECT_EQ(RunInstall({target.string()}, err), 1);
  EXPECT_TRUE(IsOneLine(err.str()));
  EXPECT_TRUE(Contains(err.str(), "lameduck install: cannot create " + target.string() +
                                      ".tmp: No such file or directory"));
}

TEST_F(InstallTest, NeedsExactlyOnePath) {
  for (const Args& args : {Args{}, Args{"a", "b"}, Args{"--to=x"}}) {
    std::ostringstream err;
    EXPECT_EQ(RunInstall(args, err), 2);
    EXPECT_TRUE(Contains(err.str(), "usage: lameduck install PATH"));
  }
}

}  // namespace
}  // namespace lameduck::coordinator

namespace lameduck::coordinator {
namespace {

// Found by fuzz_inject (tests/fuzz/regressions/fuzz_inject/number-overflow-out-of-range).
TEST(InjectTest, ANumberTooLargeForJsonIsRefusedNotACrash) {
  Outcome outcome = Inject("2312e1116");
  EXPECT_EQ(outcome.status, 1);
  EXPECT_NE(outcome.err.find("lameduck inject"), std::string::npos) << outcome.err;
  EXPECT_EQ(outcome.out, "");
}

}  // namespace
}  // namespace lameduck::coordinator
