// miniappd-helper ROLE — a helper for untrusted bytes, started by miniappd with its socket as
// fd 3 (SECURITY.md, "Helpers for untrusted bytes"). It confines itself from the daemon's hello
// before it reads a byte of partner data:
//   net      libcurl + OpenSSL exchanges (net.request), one process per program
//   extract  zlib inflation of one package into a staging directory (fd 5; the archive is fd 4)
import MiniAppPackages
import MiniAppSystem

let args = CommandLine.arguments
switch args.count == 2 ? args[1] : "" {
case "net": NetHelperRole.run()
case "extract": ExtractHelperRole.run()
default:
    HelperServer.usage("usage: miniappd-helper net|extract (started by miniappd, never by hand)\n")
}
