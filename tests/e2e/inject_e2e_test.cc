// `lameduck inject`, end to end: a Deployment whose app (bench/sample_app) takes its port from an
// env variable goes through the real `lameduck inject` binary, and the pod it comes out as is
// then run with real processes the way kubelet would run it: the app from its container's args
// ($(PORT) expanded from the container's env), lameduck from its sidecar container's args, and,
// under keep-alive load through lameduck's port, the app container's preStop command. What must
// hold: the app container is left as it was but for the preStop, the mount and its port's name,
// requests through lameduck's port are served, and the drain loses none.
//
// Not played here: kube-proxy spreading load over several pods (rollout_test.cc does that; here
// the endpoints controller only stops new connections once the pod is out), the init container
// that copies the binary, and kubelet's probes (the test polls lameduck's /ready itself).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "coordinator/cli/manifest.h"
#include "tests/support/child_process.h"
#include "tests/support/lameduck_process.h"
#include "tests/support/test_client.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;
namespace manifest = coordinator::manifest;
using manifest::Json;

constexpr std::string_view kImageBinary = "/lameduck/lameduck";  // the preStop's, in the app

// The team's manifests before lameduck: the app finds its port in PORT, as twelve-factor apps do,
// and a Service reaches it by the port's name. APP_PORT stands for the app's port.
constexpr std::string_view kInputTemplate = R"yaml(apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: example.com/sample-app:1.0
          env:
            - name: PORT
              value: "APP_PORT"
          args: ["--listen", "0.0.0.0:$(PORT)"]
          ports:
            - name: http
              containerPort: APP_PORT
          readinessProbe:
            httpGet:
              path: /
              port: http
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 80
      targetPort: http
)yaml";

std::string InputManifests(int app_port) {
  std::string text(kInputTemplate);
  const std::string placeholder = "APP_PORT";
  for (size_t at = text.find(placeholder); at != std::string::npos;
       at = text.find(placeholder, at)) {
    text.replace(at, placeholder.size(), std::to_string(app_port));
  }
  return text;
}

// Three different TCP ports that were free a moment ago.
std::array<int, 3> ThreeFreePorts() {
  std::array<int, 3> ports{};
  for (size_t i = 0; i < ports.size(); ++i) {
    do {
      ports[i] = FreePort();
    } while (std::find(ports.begin(), ports.begin() + i, ports[i]) != ports.begin() + i);
  }
  return ports;
}

const Json* DocumentOfKind(const manifest::Stream& stream, std::string_view kind) {
  for (const manifest::Document& document : stream.documents) {
    if (document.value.is_object() && document.value.value("kind", "") == kind) {
      return &document.value;
    }
  }
  return nullptr;
}

const Json* Named(const Json& list, std::string_view name) {
  if (!list.is_array()) return nullptr;
  for (const Json& item : list) {
    if (item.is_object() && item.value("name", "") == name) return &item;
  }
  return nullptr;
}

// A container's args as kubelet passes them: $(VAR) replaced by VAR's value from the container's
// env list, $$ by $, and a reference to a variable the list lacks kept as written
// (k8s.io/kubernetes third_party/forked/golang/expansion). Literal values only: valueFrom needs
// a cluster.
std::vector<std::string> ExpandedArgs(const Json& container) {
  std::map<std::string, std::string> env;
  for (const Json& variable : container.value("env", Json::array())) {
    env[variable.at("name").get<std::string>()] = variable.value("value", "");
  }
  std::vector<std::string> expanded;
  for (const Json& arg : container.value("args", Json::array())) {
    const std::string text = arg.get<std::string>();
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '$' || i + 1 == text.size()) {
        out += text[i];
      } else if (text[i + 1] == '$') {
        out += '$';
        ++i;
      } else if (size_t close = text.find(')', i + 2); text[i + 1] == '(' && close != text.npos) {
        std::string name = text.substr(i + 2, close - i - 2);
        auto found = env.find(name);
        out += found != env.end() ? found->second : "$(" + name + ")";
        i = close;
      } else {
        out += '$';  // not a reference: the characters after it are copied as they come
      }
    }
    expanded.push_back(std::move(out));
  }
  return expanded;
}

// Keep-alive clients sending GET / back to back through lameduck's port, as a Service's clients
// would. One that is answered with Connection: close connects again, as long as the pod is in
// the Service's endpoints; once it is out (EndpointRemoved), kube-proxy would send the new
// connection to another pod, so the client stops there (rerouted). That must happen inside the
// accept grace, as lameduck's --drain-delay assumes: a client whose handshake completes in the
// instant between the listener's last accept and its close gets a reset from the kernel, so
// clients reconnecting flat out until the listener closes lose one now and then (as with any
// proxy). A connect refused once the drain has begun ends a client too: the listener is closed.
// Everything
// else that goes wrong is a failure: a request sent that got no complete response (EOF, reset,
// timeout), or a status other than 200.
class KeepAliveLoad {
 public:
  KeepAliveLoad(int port, int clients) : port_(port) {
    for (int i = 0; i < clients; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~KeepAliveLoad() { Stop(); }
  KeepAliveLoad(const KeepAliveLoad&) = delete;
  KeepAliveLoad& operator=(const KeepAliveLoad&) = delete;

  // From now on a refused connect is the drain's doing, not a failure.
  void DrainStarted() { draining_ = true; }
  // The endpoints controller took the pod out of the Service: no new connection reaches it.
  void EndpointRemoved() { removed_ = true; }
  void Stop() {
    stopping_ = true;
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  bool WaitForServed(uint64_t count, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (served_keep_alive_ < count) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }
  // Responses without Connection: close: served before the drain.
  uint64_t served_keep_alive() const { return served_keep_alive_; }
  // Responses with Connection: close: only a draining lameduck says it to these clients.
  uint64_t served_closing() const { return served_closing_; }
  uint64_t rerouted() const { return rerouted_; }
  uint64_t refused() const { return refused_; }
  uint64_t failed() const { return failed_; }
  std::string failures() const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (const std::string& failure : failures_) text += "\n  " + failure;
    return text;
  }

 private:
  void Run() {
    while (!stopping_) {
      if (removed_) {
        ++rerouted_;
        return;
      }
      bool draining = draining_;
      auto client = TestClient::Connect(port_);
      if (client == nullptr) {
        if (draining) {
          ++refused_;
        } else {
          Fail("connect failed before the drain");
        }
        return;
      }
      while (!stopping_) {
        if (!client->Send("GET / HTTP/1.1\r\nHost: web\r\n\r\n")) {
          return Fail("send: " + client->last_error());
        }
        auto response = client->ReadResponse();
        if (!response) return Fail("no complete response: " + client->last_error());
        if (response->status != 200) return Fail("status " + std::to_string(response->status));
        if (response->Header("Connection") == "close") {
          ++served_closing_;
          break;
        }
        ++served_keep_alive_;
      }
    }
  }
  void Fail(const std::string& what) {
    ++failed_;
    std::lock_guard lock(mutex_);
    if (failures_.size() < 10) failures_.push_back(what);
  }

  const int port_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> removed_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> served_keep_alive_{0};
  std::atomic<uint64_t> served_closing_{0};
  std::atomic<uint64_t> rerouted_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> failed_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> failures_;  // the first few, for the failure message
  std::vector<std::thread> threads_;
};

// Runs the real `lameduck inject` on InputManifests() and keeps both streams, parsed.
class InjectE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto [app_port, port, admin_port] = ThreeFreePorts();
    app_port_ = app_port;
    port_ = port;
    admin_port_ = admin_port;
    input_text_ = InputManifests(app_port_);
    CompletedProcess inject = RunToCompletion(
        {LameduckBinary(), "inject", "--port", std::to_string(port_), "--admin-port",
         std::to_string(admin_port_), "--drain-delay", "300ms", "--drain-timeout", "5s"},
        input_text_, 10s);
    ASSERT_EQ(inject.status, 0) << inject.err;
    inject_summary_ = inject.err;
    auto input = manifest::Read(input_text_);
    ASSERT_TRUE(input) << input.error();
    input_ = *input;
    auto output = manifest::Read(inject.out);
    ASSERT_TRUE(output) << output.error() << "\n" << inject.out;
    output_ = *output;
    ASSERT_EQ(output_.format, manifest::Format::kYaml);

    const Json* deployment = DocumentOfKind(input_, "Deployment");
    ASSERT_NE(deployment, nullptr);
    input_app_ = deployment->at("spec").at("template").at("spec").at("containers").at(0);
    const Json* wired = DocumentOfKind(output_, "Deployment");
    ASSERT_NE(wired, nullptr) << inject.out;
    const Json& pod = wired->at("spec").at("template").at("spec");
    const Json* app = Named(pod.at("containers"), "web");
    ASSERT_NE(app, nullptr) << pod.dump(2);
    app_ = *app;
    const Json* sidecar = Named(pod.at("initContainers"), "lameduck");
    ASSERT_NE(sidecar, nullptr) << pod.dump(2);
    sidecar_ = *sidecar;
    const Json* service = DocumentOfKind(output_, "Service");
    ASSERT_NE(service, nullptr) << inject.out;
    service_ = *service;
  }

  int app_port_ = 0;
  int port_ = 0;  // lameduck's
  int admin_port_ = 0;
  std::string input_text_;
  std::string inject_summary_;  // its stderr
  manifest::Stream input_;
  manifest::Stream output_;
  Json input_app_;  // the app container as it came in
  Json app_;        // and as inject wrote it
  Json sidecar_;    // the lameduck init container
  Json service_;
};

TEST_F(InjectE2eTest, TheAppContainerKeepsItsEnvArgsPortAndProbeAndGainsOnlyThePreStop) {
  EXPECT_EQ(app_["env"], input_app_["env"]);
  EXPECT_EQ(app_["args"], input_app_["args"]);
  ASSERT_EQ(app_["ports"].size(), 1u);
  EXPECT_EQ(app_["ports"][0]["containerPort"], app_port_);
  // Its entry's name goes to lameduck, which the Service now reaches by it; the probe follows
  // the entry to its new name and is otherwise as it was.
  EXPECT_EQ(app_["ports"][0]["name"], "app-http");
  Json probe = app_["readinessProbe"];
  EXPECT_EQ(probe["httpGet"]["port"], "app-http");
  probe["httpGet"]["port"] = "http";
  EXPECT_EQ(probe, input_app_["readinessProbe"]);

  const Json& command = app_.at("lifecycle").at("preStop").at("exec").at("command");
  ASSERT_GE(command.size(), 7u) << command.dump();
  Json head(command.begin(), command.begin() + 6);
  EXPECT_EQ(head, Json::array({kImageBinary, "drain", "--wait", "--admin",
                               "127.0.0.1:" + std::to_string(admin_port_), "--timeout"}));
  EXPECT_EQ(command.size(), 7u) << "the app had no preStop to chain: " << command.dump();

  // Nothing else about the container changed.
  Json unchanged = app_;
  unchanged["ports"][0]["name"] = "http";
  unchanged["readinessProbe"] = probe;
  unchanged.erase("lifecycle");
  EXPECT_EQ(unchanged.at("volumeMounts").size(), 1u);
  unchanged.erase("volumeMounts");
  EXPECT_EQ(unchanged, input_app_);
}

// kubelet looks a probe's named port up in the ports of the probe's own container only
// (pkg/kubelet/prober/prober.go, findPortByName): the app's probe must name an entry the app
// container still has, not the name that moved to lameduck.
TEST_F(InjectE2eTest, TheAppsProbeStillResolvesToTheAppsPortTheWayKubeletLooksItUp) {
  const Json& port = app_.at("readinessProbe").at("httpGet").at("port");
  ASSERT_TRUE(port.is_string()) << port;
  const Json* entry = Named(app_["ports"], port.get<std::string>());
  ASSERT_NE(entry, nullptr) << "kubelet: port " << port << " not found in container web";
  EXPECT_EQ((*entry)["containerPort"], app_port_);
}

TEST_F(InjectE2eTest, LameduckListensOnItsOwnNamedPortAndTheServiceReachesItByName) {
  EXPECT_EQ(sidecar_["restartPolicy"], "Always");
  const Json* http = Named(sidecar_["ports"], "http");
  ASSERT_NE(http, nullptr) << sidecar_["ports"].dump();
  EXPECT_EQ((*http)["containerPort"], port_);
  const Json& args = sidecar_.at("args");
  auto has = [&](const std::string& arg) {
    return std::find(args.begin(), args.end(), Json(arg)) != args.end();
  };
  EXPECT_TRUE(has("--listen=0.0.0.0:" + std::to_string(port_))) << args.dump();
  EXPECT_TRUE(has("--upstream=127.0.0.1:" + std::to_string(app_port_))) << args.dump();
  EXPECT_TRUE(has("--admin=0.0.0.0:" + std::to_string(admin_port_))) << args.dump();

  ASSERT_EQ(service_["spec"]["ports"].size(), 1u);
  EXPECT_EQ(service_["spec"]["ports"][0]["targetPort"], "http");
  EXPECT_EQ(service_["spec"]["ports"][0]["port"], 80);
}

TEST_F(InjectE2eTest, ThePodServesThroughLameduckAndItsPreStopDrainLosesNoRequest) {
  constexpr int kClients = 4;
  constexpr int kSlowRequests = 2;
  constexpr auto kEndpointRemovalLag = 100ms;

  // The app container, as kubelet starts it.
  std::vector<std::string> app_args = ExpandedArgs(app_);
  ASSERT_EQ(app_args,
            (std::vector<std::string>{"--listen", "0.0.0.0:" + std::to_string(app_port_)}));
  ChildProcess app;
  std::vector<std::string> app_argv = {SampleAppBinary()};
  app_argv.insert(app_argv.end(), app_args.begin(), app_args.end());
  ASSERT_TRUE(app.Start(app_argv, /*capture_stderr=*/true));
  ASSERT_TRUE(app.WaitForLine("listening on", 5s)) << "the app did not start";

  // The sidecar, with its args but for the admin socket: /run/lameduck is the pod's volume.
  std::string socket_dir = ::testing::TempDir() + "lameduck-inject-XXXXXX";
  ASSERT_NE(mkdtemp(socket_dir.data()), nullptr);
  struct RemoveDir {
    std::string path;
    ~RemoveDir() { std::filesystem::remove_all(path); }
  } remove_dir{socket_dir};
  std::vector<std::string> lameduck_args;
  int socket_args = 0;
  for (const Json& arg : sidecar_.at("args")) {
    std::string text = arg.get<std::string>();
    if (text.starts_with("--admin-socket=")) {
      text = "--admin-socket=" + socket_dir + "/admin.sock";
      ++socket_args;
    }
    lameduck_args.push_back(text);
  }
  ASSERT_EQ(socket_args, 1) << sidecar_["args"].dump();
  LameduckProcess lameduck;
  ASSERT_TRUE(lameduck.Start(lameduck_args)) << "lameduck did not start";
  EXPECT_EQ(lameduck.port(), port_);
  EXPECT_EQ(lameduck.admin_port(), admin_port_);
  ASSERT_TRUE(lameduck.WaitForReady(200, 10s)) << "lameduck never became ready";

  KeepAliveLoad load(port_, kClients);
  ASSERT_TRUE(load.WaitForServed(200, 10s)) << load.failures();
  // Slow requests in flight as the drain begins.
  std::vector<std::unique_ptr<TestClient>> slow;
  for (int i = 0; i < kSlowRequests; ++i) {
    slow.push_back(TestClient::Connect(port_));
    ASSERT_NE(slow.back(), nullptr);
    ASSERT_TRUE(slow.back()->Send("GET /slow?ms=500 HTTP/1.1\r\nHost: web\r\n\r\n"));
  }

  // kubelet deletes the pod: the app container's preStop runs first.
  std::vector<std::string> pre_stop;
  for (const Json& arg : app_.at("lifecycle").at("preStop").at("exec").at("command")) {
    pre_stop.push_back(arg.get<std::string>());
  }
  ASSERT_EQ(pre_stop.front(), kImageBinary);
  pre_stop.front() = LameduckBinary();
  uint64_t served_before_drain = load.served_keep_alive();
  load.DrainStarted();
  // The endpoints controller: the pod leaves the Service once its readiness fails, some time
  // later but well inside lameduck's accept grace (300ms here, seconds in a cluster). Until
  // then, new connections still come.
  std::thread endpoints_controller([&] {
    lameduck.WaitForReady(503, 10s);
    std::this_thread::sleep_for(kEndpointRemovalLag);
    load.EndpointRemoved();
  });
  CompletedProcess hook = RunToCompletion(pre_stop, "", 30s);
  endpoints_controller.join();
  ASSERT_EQ(hook.status, 0) << hook.out << hook.err;

  for (auto& client : slow) {
    auto response = client->ReadResponse();
    ASSERT_TRUE(response) << "a slow request was lost: " << client->last_error();
    EXPECT_EQ(response->status, 200);
  }
  load.Stop();
  std::printf(
      "inject e2e: %llu keep-alive responses (%llu before the preStop ran), %llu with "
      "Connection: close; then %llu clients rerouted, %llu refused; %llu failed\n",
      static_cast<unsigned long long>(load.served_keep_alive()),
      static_cast<unsigned long long>(served_before_drain),
      static_cast<unsigned long long>(load.served_closing()),
      static_cast<unsigned long long>(load.rerouted()),
      static_cast<unsigned long long>(load.refused()),
      static_cast<unsigned long long>(load.failed()));
  EXPECT_EQ(load.failed(), 0u) << load.failures();
  EXPECT_GE(served_before_drain, 200u);
  // Every client was still sending when the drain began, and was told to close.
  EXPECT_GE(load.served_closing(), static_cast<uint64_t>(kClients));

  // `drain --wait` prints the drain's summary as JSON.
  std::string summary_line = hook.out.substr(0, hook.out.find('\n'));
  Json summary = Json::parse(summary_line, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(summary.is_object()) << hook.out;
  std::printf("inject e2e: the preStop's drain: %s\n", summary.dump().c_str());
  EXPECT_EQ(summary["forced"], 0) << hook.out;
  EXPECT_EQ(summary["exit_status"], 0) << hook.out;
  EXPECT_GE(summary["served_during_drain"].get<uint64_t>(), static_cast<uint64_t>(kClients))
      << hook.out;

  // Then the app gets SIGTERM, and once it is gone the sidecar does.
  ASSERT_TRUE(app.Signal(SIGTERM));
  EXPECT_TRUE(app.Wait(5s));
  ASSERT_TRUE(lameduck.Signal(SIGTERM));
  EXPECT_EQ(lameduck.Wait(10s), 0);
  EXPECT_TRUE(lameduck.DrainsBalance());
  auto complete = lameduck.WaitForEvent("drain.complete", 1s);
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["forced"], 0);
}

}  // namespace
}  // namespace lameduck::testing
