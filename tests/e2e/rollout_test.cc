// The headline claim, played the way Kubernetes plays it: three pods, each an app that dies the
// instant it gets SIGTERM with lameduck in front as a native sidecar, rolled one by one under
// steady keep-alive load with slow requests mixed in. Zero failed requests.
//
// kube-proxy: new connections spread over the current endpoints; open connections stay pinned
// to their pod even after it is removed (bench/load_generator.h). The endpoint of a pod being
// deleted is removed 1 to 3 s after deletion starts. kubelet, for a native sidecar: the app
// container's preStop (`lameduck drain --wait`) runs and returns, then the app gets SIGTERM, then,
// once the app has exited, lameduck gets SIGTERM; SIGKILL at the grace period.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "bench/load_generator.h"
#include "tests/support/child_process.h"
#include "tests/support/lameduck_process.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kGracePeriod = 30s;  // terminationGracePeriodSeconds

struct Pod {
  ChildProcess app;
  LameduckProcess lameduck;
  int app_port = 0;
};

std::unique_ptr<Pod> StartPod(int workers) {
  auto pod = std::make_unique<Pod>();
  pod->app_port = FreePort();
  std::string app_address = "127.0.0.1:" + std::to_string(pod->app_port);
  if (!pod->app.Start({SampleAppBinary(), "--listen", app_address})) return nullptr;
  // The drain delay outlasts the slowest endpoint removal (3 s).
  if (!pod->lameduck.Start({"--upstream", app_address, "--drain-delay", "3500ms", "--drain-timeout",
                            "20s", "--workers", std::to_string(workers)})) {
    return nullptr;
  }
  if (!pod->lameduck.WaitForReady(200)) return nullptr;
  return pod;
}

struct Termination {
  int lameduck_status = -1;
  int pre_stop_status = -1;
  nlohmann::json drain;
};

// kubelet deleting a pod whose lameduck is a native sidecar.
Termination Terminate(Pod& pod) {
  Termination result;
  ChildProcess pre_stop;  // the app container's exec preStop hook
  pre_stop.Start({LameduckBinary(), "drain", "--wait", "--admin",
                  "127.0.0.1:" + std::to_string(pod.lameduck.admin_port())});
  result.pre_stop_status = pre_stop.Wait(kGracePeriod).value_or(-1);
  pod.app.Signal(SIGTERM);  // the naive app dies at once
  pod.app.Wait(kGracePeriod);
  pod.lameduck.Signal(SIGTERM);  // sidecars are stopped after the main containers
  auto status = pod.lameduck.Wait(kGracePeriod);
  if (!status) {
    pod.lameduck.Signal(SIGKILL);
    status = pod.lameduck.Wait(5s);
  }
  result.lameduck_status = status.value_or(-1);
  EXPECT_TRUE(pod.lameduck.DrainsBalance());
  if (auto complete = pod.lameduck.WaitForEvent("drain.complete", 1s)) result.drain = *complete;
  return result;
}

// With one worker per pod and with two (--workers 2: two loops, two listeners on each port).
class RolloutTest : public ::testing::TestWithParam<int> {};

TEST_P(RolloutTest, ThreePodsRolledUnderLoadLoseNoRequest) {
  auto started = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<Pod>> pods;
  for (int i = 0; i < 3; ++i) {
    pods.push_back(StartPod(GetParam()));
    ASSERT_NE(pods.back(), nullptr) << "pod " << i << " did not start";
  }
  auto ports = [&] {
    std::vector<int> endpoints;
    for (const auto& pod : pods) {
      if (pod) endpoints.push_back(pod->lameduck.port());
    }
    return endpoints;
  };
  bench::LoadOptions options;
  options.endpoints = ports();
  options.connections = 12;
  options.slow_fraction = 0.05;
  bench::LoadGenerator load(options);
  load.Start();
  std::this_thread::sleep_for(1s);  // steady load before the rollout (not an assertion)

  const std::chrono::milliseconds removal_lags[] = {1000ms, 2000ms, 3000ms};
  std::vector<Termination> terminations;
  for (int i = 0; i < 3; ++i) {
    // maxSurge 1: the new pod is ready and in the endpoints before the old one goes.
    auto fresh = StartPod(GetParam());
    ASSERT_NE(fresh, nullptr);
    std::unique_ptr<Pod> old = std::move(pods[i]);
    pods[i] = std::move(fresh);
    std::vector<int> with_old = ports();
    with_old.push_back(old->lameduck.port());
    load.SetEndpoints(with_old);
    // Deletion starts: the endpoint controller and kubelet act independently.
    std::thread endpoint_controller([&, lag = removal_lags[i]] {
      std::this_thread::sleep_for(lag);
      load.SetEndpoints(ports());
    });
    terminations.push_back(Terminate(*old));
    endpoint_controller.join();
  }
  std::this_thread::sleep_for(500ms);
  load.Stop();
  bench::LoadStats stats = load.stats();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);

  std::printf("rollout: %s; %lld ms\n", bench::FormatSummary(stats).c_str(),
              static_cast<long long>(took.count()));
  for (size_t i = 0; i < terminations.size(); ++i) {
    std::printf("pod %zu: lameduck exit %d, drain %s\n", i, terminations[i].lameduck_status,
                terminations[i].drain.dump().c_str());
  }
  EXPECT_EQ(stats.failed, 0u) << bench::FormatSummary(stats);
  EXPECT_GT(stats.ok, 500u);  // about 2,000 on an idle machine
  EXPECT_GT(stats.slow_sent, 0u);
  EXPECT_EQ(stats.slow_ok, stats.slow_sent);
  for (const auto& termination : terminations) {
    EXPECT_EQ(termination.pre_stop_status, 0);
    EXPECT_EQ(termination.lameduck_status, 0);
    ASSERT_TRUE(termination.drain.is_object());
    EXPECT_EQ(termination.drain["forced"], 0);
  }
  EXPECT_LT(took, 60s);
}

INSTANTIATE_TEST_SUITE_P(Workers, RolloutTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 1 ? "OneWorker" : "TwoWorkers";
                         });

}  // namespace
}  // namespace lameduck::testing
