// What a container or Service port is, from what Kubernetes manifests say about it: its name
// (and, by the meshes' convention, the first word of a Service port's name), its number. For
// `lameduck inject`, which fronts HTTP/1.1 and h2c (gRPC) and leaves everything else alone: a
// guess that errs towards leaving a port alone, with the reason in words for the summary. Pure
// functions.
#pragma once

#include <string>
#include <string_view>

namespace lameduck::coordinator {

// Why a port named so is not plain HTTP/1.1 ("gRPC (...)", "Redis"), or "" when its name does
// not say: any word of it (grpc, https, redis, cql, intra-node, ...), unless the name also says
// HTTP and the word is a vague one ("http-client").
std::string NonHttpByName(std::string_view name);

// The same from a Service port's name's first word only: Istio and Linkerd read the protocol
// there (grpc-api, tcp-db, https-admin).
std::string NonHttpByProtocolPrefix(std::string_view name);

// A well-known port of a protocol that is not plain HTTP (5432: "PostgreSQL"), or "".
std::string_view NonHttpByNumber(int port);

// gRPC or cleartext HTTP/2 ("gRPC", "HTTP/2"), which lameduck fronts with
// --upstream-protocol h2c; "" when the port does not say so. By any word of its name (grpc, h2c,
// h2, http2), by a Service port name's first word (the meshes' convention), by the well-known
// gRPC port 50051, or by a Service's appProtocol (grpc, h2c, kubernetes.io/h2c).
std::string_view H2cByName(std::string_view name);
std::string_view H2cByProtocolPrefix(std::string_view name);
std::string_view H2cByNumber(int port);
std::string_view H2cByAppProtocol(std::string_view app_protocol);

// A port for monitoring and debugging tools (metrics, health, pprof, ...), not the app's traffic.
// ("admin" is not one: an admin UI is traffic, and may be the app.)
bool IsSidePort(std::string_view name);

// A name that says HTTP: a word http, web, www, api or ws.
bool LooksHttp(std::string_view name);

}  // namespace lameduck::coordinator
