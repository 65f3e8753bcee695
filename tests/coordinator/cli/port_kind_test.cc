// Port kinds: what names and numbers say about a port, for inject's choice of the app's port.
#include "coordinator/cli/port_kind.h"

#include <gtest/gtest.h>

namespace lameduck::coordinator {
namespace {

TEST(PortKindTest, NamesThatSayAnotherProtocol) {
  EXPECT_EQ(NonHttpByName("grpc"), "") << "gRPC is fronted over h2c";
  EXPECT_EQ(NonHttpByName("tcp-redis"), "raw TCP");
  EXPECT_EQ(NonHttpByName("HTTPS"), "TLS (lameduck forwards cleartext HTTP only)");
  EXPECT_EQ(NonHttpByName("intra-node"), "a cluster's internal protocol");
  EXPECT_EQ(NonHttpByName("http"), "");
  EXPECT_EQ(NonHttpByName(""), "");
  EXPECT_EQ(NonHttpByName("http-client"), "") << "a vague word beside http";
  EXPECT_EQ(NonHttpByName("client"), "a client protocol");
}

TEST(PortKindTest, MeshesReadTheFirstWordOfAServicePortsName) {
  EXPECT_EQ(NonHttpByProtocolPrefix("tcp-db"), "raw TCP");
  EXPECT_EQ(NonHttpByProtocolPrefix("http-grpc"), "");
  EXPECT_EQ(NonHttpByProtocolPrefix("web"), "");
}

TEST(PortKindTest, GrpcAndH2cAreFrontedOverH2c) {
  EXPECT_EQ(H2cByName("grpc"), "gRPC");
  EXPECT_EQ(H2cByName("grpc-web-api"), "gRPC");
  EXPECT_EQ(H2cByName("h2c"), "HTTP/2");
  EXPECT_EQ(H2cByName("http"), "");
  EXPECT_EQ(H2cByProtocolPrefix("grpc-api"), "gRPC");
  EXPECT_EQ(H2cByProtocolPrefix("http-grpc"), "") << "the meshes read the first word only";
  EXPECT_EQ(H2cByNumber(50051), "gRPC");
  EXPECT_EQ(H2cByNumber(8080), "");
  EXPECT_EQ(H2cByAppProtocol("kubernetes.io/h2c"), "HTTP/2");
  EXPECT_EQ(H2cByAppProtocol("GRPC"), "gRPC");
  EXPECT_EQ(H2cByAppProtocol("http"), "");
}

TEST(PortKindTest, WellKnownNumbers) {
  EXPECT_EQ(NonHttpByNumber(5432), "PostgreSQL");
  EXPECT_EQ(NonHttpByNumber(443), "TLS (lameduck forwards cleartext HTTP only)");
  EXPECT_EQ(NonHttpByNumber(8080), "");
  EXPECT_EQ(NonHttpByNumber(3000), "");
}

TEST(PortKindTest, SidePortsAndHttpNames) {
  EXPECT_TRUE(IsSidePort("metrics"));
  EXPECT_TRUE(IsSidePort("http-metrics"));
  EXPECT_FALSE(IsSidePort("admin")) << "an admin UI is traffic";
  EXPECT_TRUE(LooksHttp("http"));
  EXPECT_TRUE(LooksHttp("web-ui"));
  EXPECT_FALSE(LooksHttp("redis"));
}

}  // namespace
}  // namespace lameduck::coordinator
