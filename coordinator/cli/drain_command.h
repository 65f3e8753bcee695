// `lameduck drain`: the client side of the admin API's POST /drain, for an app container's preStop
// `exec` hook or a person at a shell. It sends one request to a running lameduck (loopback TCP or
// the unix socket), waits for the answer within --timeout, prints it and turns its status into
// an exit status.
//
// A short-lived process of its own: blocking sockets with poll() deadlines, no libuv loop. It
// does not retry, resolve names, speak TLS or follow redirects, and it never prints the token.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lameduck::coordinator {

// `lameduck drain [--admin ADDR | --admin-socket PATH] [--token T] [--wait] [--timeout DUR]`.
// args: what follows "drain". env: the process environment; LAMEDUCK_ADMIN, LAMEDUCK_ADMIN_SOCKET
// and LAMEDUCK_ADMIN_TOKEN are the defaults of --admin, --admin-socket and --token, as for the
// server. Writes the server's answer body to `out` (the drain summary JSON with --wait) and
// one-line errors to `err`. Returns the exit status: 0 when the server answered 2xx, 1 when it did
// not (or could not be reached, or --timeout passed), 2 for bad usage (one line naming the
// option). `--help` prints DrainUsageText() to `out` and returns 0.
int RunDrainCommand(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env, std::FILE* out, std::FILE* err);

// `lameduck drain --help`.
std::string_view DrainUsageText();

}  // namespace lameduck::coordinator
