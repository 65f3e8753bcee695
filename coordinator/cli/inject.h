// `lameduck inject` and `lameduck uninject`: wiring lameduck into the manifests a team already
// has, and taking it out again.
//
// inject is a filter for the pipelines teams use: `kubectl get deploy,svc -o yaml | lameduck
// inject | kubectl apply -f -`, a Helm post-renderer, or after `kustomize build`. It reads JSON or
// a multi-document YAML stream (a `kind: List` or a Kustomize `ResourceList` too), wires every
// workload it can (Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Pod,
// Argo Rollout), retargets the Services that reach them, passes everything else through byte
// for byte, and prints what it did, object by object, on stderr. It talks to no cluster.
//
// The model (DESIGN.md, "Kubernetes wiring"): lameduck never moves the app. It listens on a port
// of its own and forwards to the app's declared port on 127.0.0.1; the app container keeps its
// ports, env, args, command and probes and gains only the drain preStop (its own preStop is
// chained after the drain) and the shared volume's mount. A Service reaches lameduck through a
// named targetPort: lameduck's port entry carries the name the Service uses and the app's entry
// gets another, so during the rollout old pods resolve the name to the app, new pods to lameduck.
// What is not plain HTTP/1.1 (gRPC, HTTP/2, TLS, databases, UDP, hostNetwork pods) is left alone,
// with a note.
//
// Every edit is recorded on the object it changed, with how to undo it (annotation
// lameduck.dev/original; undo_record.h): uninject applies it, and inject applies it first too, so
// re-injecting with other flags or annotations rewires from the original, and gives the same
// bytes when nothing changed.
#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace lameduck::coordinator {

// `lameduck inject [OPTIONS]`; args: what follows "inject". Reads manifests from `in`, writes
// them wired to `out`, the summary to `err`. Returns 0 when written (also when nothing could be
// wired: the summary says why); 1 when the input is not JSON or YAML (one line on `err`, nothing
// on `out`); 2 for bad usage (one line naming the option). `--help` prints InjectUsageText().
int RunInject(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
              std::ostream& err);

// `lameduck uninject`: the inverse. Workloads and Services that inject changed get back what
// they had; everything else is written as it came. Same exit statuses.
int RunUninject(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                std::ostream& err);

// `lameduck inject --help`.
std::string_view InjectUsageText();

}  // namespace lameduck::coordinator
