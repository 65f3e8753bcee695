// Port kinds: word lists and well-known numbers.
#include "coordinator/cli/port_kind.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <vector>

namespace lameduck::coordinator {
namespace {

// Words in port names that say the port is not plain HTTP/1.1, with why.
const std::map<std::string, std::string, std::less<>>& NonHttpWords() {
  static const std::map<std::string, std::string, std::less<>> kWords = {
      {"https", "TLS (lameduck forwards cleartext HTTP only)"},
      {"tls", "TLS (lameduck forwards cleartext HTTP only)"},
      {"ssl", "TLS (lameduck forwards cleartext HTTP only)"},
      {"wss", "TLS (lameduck forwards cleartext HTTP only)"},
      {"tcp", "raw TCP"},
      {"udp", "UDP"},
      {"redis", "Redis"},
      {"sentinel", "Redis Sentinel"},
      {"postgres", "PostgreSQL"},
      {"postgresql", "PostgreSQL"},
      {"pg", "PostgreSQL"},
      {"mysql", "MySQL"},
      {"mariadb", "MySQL"},
      {"mongo", "MongoDB"},
      {"mongodb", "MongoDB"},
      {"cql", "Cassandra"},
      {"cassandra", "Cassandra"},
      {"intra", "a cluster's internal protocol"},
      {"gossip", "a cluster's internal protocol"},
      {"peer", "a cluster's internal protocol"},
      {"raft", "a cluster's internal protocol"},
      {"cluster", "a cluster's internal protocol"},
      {"amqp", "AMQP"},
      {"amqps", "AMQP"},
      {"kafka", "Kafka"},
      {"memcache", "Memcached"},
      {"memcached", "Memcached"},
      {"zk", "ZooKeeper"},
      {"zookeeper", "ZooKeeper"},
      {"client", "a client protocol"},
      {"nats", "NATS"},
      {"mqtt", "MQTT"},
      {"ldap", "LDAP"},
      {"smtp", "SMTP"},
      {"dns", "DNS"},
      {"ssh", "SSH"},
      {"etcd", "etcd"},
      {"thrift", "Thrift"},
      {"jmx", "JMX"},
      {"rpc", "RPC"},
  };
  return kWords;
}

// Well-known ports of protocols that are not plain HTTP.
std::string_view WellKnownNonHttp(int port) {
  switch (port) {
    case 22:
      return "SSH";
    case 25:
    case 465:
    case 587:
      return "SMTP";
    case 53:
      return "DNS";
    case 443:
    case 6443:
    case 8443:
    case 9443:
      return "TLS (lameduck forwards cleartext HTTP only)";
    case 389:
    case 636:
      return "LDAP";
    case 1433:
      return "SQL Server";
    case 1521:
      return "Oracle";
    case 1883:
    case 8883:
      return "MQTT";
    case 2181:
      return "ZooKeeper";
    case 2379:
    case 2380:
      return "etcd";
    case 3306:
      return "MySQL";
    case 4222:
      return "NATS";
    case 5432:
      return "PostgreSQL";
    case 5671:
    case 5672:
      return "AMQP";
    case 6379:
    case 26379:
      return "Redis";
    case 7000:
    case 7001:
    case 7199:
    case 9042:
    case 9160:
      return "Cassandra";
    case 9092:
    case 9093:
      return "Kafka";
    case 9300:
      return "Elasticsearch transport";
    case 11211:
      return "Memcached";
    case 27017:
      return "MongoDB";
    default:
      return "";
  }
}

// Words in port names that say gRPC or cleartext HTTP/2, with the protocol's name.
std::string_view H2cWord(std::string_view word) {
  if (word == "grpc") return "gRPC";
  if (word == "h2c" || word == "h2" || word == "http2") return "HTTP/2";
  return "";
}

// Ports that serve monitoring and debugging tools, not the app's traffic: never chosen unless
// asked for. ("admin" is not one: an admin UI is traffic, and may be the app.)
bool IsSidePortWord(std::string_view word) {
  for (std::string_view side :
       {"metrics", "prometheus", "prom", "monitoring", "health", "healthz", "probe", "probes",
        "debug", "pprof", "management", "mgmt", "status", "stats", "actuator", "profiler"}) {
    if (word == side) return true;
  }
  return false;
}

std::vector<std::string> Words(std::string_view name) {
  std::vector<std::string> words;
  std::string word;
  for (char c : std::string(name) + "-") {
    if (c == '-' || c == '_') {
      if (!word.empty()) words.push_back(word);
      word.clear();
    } else {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return words;
}

}  // namespace

bool LooksHttp(std::string_view name) {
  for (const std::string& word : Words(name)) {
    if (word == "http" || word == "web" || word == "www" || word == "api" || word == "ws") {
      return true;
    }
  }
  return false;
}

std::string NonHttpByName(std::string_view name) {
  bool http_name = LooksHttp(name);
  for (const std::string& word : Words(name)) {
    auto it = NonHttpWords().find(word);
    if (it != NonHttpWords().end() && !(http_name && word == "client")) return it->second;
  }
  return "";
}

std::string NonHttpByProtocolPrefix(std::string_view name) {
  std::vector<std::string> words = Words(name);
  if (words.empty()) return "";
  auto it = NonHttpWords().find(words.front());
  return it != NonHttpWords().end() ? it->second : "";
}

std::string_view NonHttpByNumber(int port) { return WellKnownNonHttp(port); }

std::string_view H2cByName(std::string_view name) {
  for (const std::string& word : Words(name)) {
    if (std::string_view protocol = H2cWord(word); !protocol.empty()) return protocol;
  }
  return "";
}

std::string_view H2cByProtocolPrefix(std::string_view name) {
  std::vector<std::string> words = Words(name);
  return words.empty() ? "" : H2cWord(words.front());
}

std::string_view H2cByNumber(int port) { return port == 50051 ? "gRPC" : ""; }

std::string_view H2cByAppProtocol(std::string_view app_protocol) {
  std::string lower(app_protocol);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "grpc") return "gRPC";
  if (lower == "h2c" || lower == "kubernetes.io/h2c" || lower == "http2") return "HTTP/2";
  return "";
}

bool IsSidePort(std::string_view name) {
  std::vector<std::string> words = Words(name);
  return std::any_of(words.begin(), words.end(), IsSidePortWord);
}

}  // namespace lameduck::coordinator
