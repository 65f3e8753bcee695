// `lameduck drain`: the client side of the admin API's POST /drain, for an app container's preStop
// `exec` hook or a person at a shell. It sends one request to a running lameduck (loopback TCP or
// the unix socket), waits for the answer within --timeout, prints it and turns its status into
// an exit status. Then, if asked, it sleeps or becomes an existing preStop command, so that an
// image without a shell can chain its own hook after lameduck's drain.
//
// A short-lived process of its own: blocking sockets with poll() deadlines, no libuv loop. It
// does not retry, resolve names, speak TLS or follow redirects, and it never prints the token.
// It runs CMD with execvp, never through a shell.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lameduck::coordinator {

// `lameduck drain [--admin ADDR | --admin-socket PATH] [--token T] [--wait] [--timeout DUR]
//                 [--then-sleep DUR | --then -- CMD [ARGS...]]`.
// args: what follows "drain". env: the process environment; LAMEDUCK_ADMIN, LAMEDUCK_ADMIN_SOCKET
// and LAMEDUCK_ADMIN_TOKEN are the defaults of --admin, --admin-socket and --token, as for the
// server. Writes the server's answer body to `out` (the drain summary JSON with --wait) and
// one-line errors to `err`. Returns the exit status: 0 when the server answered 2xx, 1 when it did
// not (or could not be reached, or --timeout passed), 2 for bad usage (one line naming the
// option; nothing is run or slept then). `--help` prints DrainUsageText() to `out` and returns 0.
//
// After the drain request, succeeded or failed (its error printed first): with --then-sleep,
// sleeps DUR, then returns the drain's status. With --then, does not return: the process becomes
// CMD (execvp, so CMD's exit status is the command's), after all stdio streams are flushed; only
// if execvp fails does it return 127, with one line on `err` naming CMD. CMD and ARGS are
// everything after the "--" that must follow --then, verbatim. Without --wait, CMD runs once
// lameduck has accepted the drain (202), not once it is complete.
int RunDrainCommand(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env, std::FILE* out, std::FILE* err);

// `lameduck drain --help`.
std::string_view DrainUsageText();

}  // namespace lameduck::coordinator
