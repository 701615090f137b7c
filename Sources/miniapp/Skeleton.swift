import MiniAppDaemon

/// The files of `miniapp new`, per runtime. Each program does the same: `system.info`, a
/// visit counter in `storage.*`, and `payment.pay` (a host method: answered by the mock rules
/// under `miniapp mock-bridge` and `miniapp dev`, by the host runtime in production).
enum Skeleton {
    static let runtimes = ["node", "python", "native"]

    static func testCommand(_ runtime: String) -> String {
        switch runtime {
        case "python": "python3 test_main.py"
        case "native": "sh test.sh"
        default: "node test.js"
        }
    }

    static func entry(_ runtime: String) -> String {
        switch runtime {
        case "python": "main.py"
        case "native": "main.sh"
        default: "main.js"
        }
    }

    /// (name, contents, executable)
    static func files(id: String, runtime: String) -> [(String, String, Bool)] {
        let common: [(String, String, Bool)] = [
            ("manifest.json", manifest(id: id, runtime: runtime), false),
            ("mock-rules.json", rules, false),
            ("README.md", readme(id: id, runtime: runtime), false),
        ]
        switch runtime {
        case "python": return common + [("main.py", pythonMain, false), ("test_main.py", pythonTest, false)]
        case "native": return common + [("main.sh", shellMain, true), ("test.sh", shellTest, true)]
        default: return common + [("main.js", nodeMain, false), ("test.js", nodeTest, false)]
        }
    }

    static func manifest(id: String, runtime: String) -> String {
        """
        {
          "id": "\(id)",
          "version": "0.1.0",
          "minHostVersion": "\(DaemonVersion.current)",
          "entryPoint": "\(entry(runtime))",
          "runtime": "\(runtime)",
          "permissions": ["payment"],
          "name": "\(id)"
        }

        """
    }

    static let rules = """
        {"rules": [
          {"method": "payment.pay", "params": {"currency": "USD"}, "result": {"transactionId": "tx-mock-1"}},
          {"method": "payment.pay", "error": {"code": "PAYMENT_DECLINED", "message": "only USD in the mock"}}
        ]}

        """

    static func readme(id: String, runtime: String) -> String {
        let test = testCommand(runtime)
        return """
            # \(id)

            A mini-program for miniappd (\(runtime)). `\(entry(runtime))` reads `system.info`, counts visits in
            `storage.*` and pays with the host method `payment.pay`.

            ```sh
            miniapp mock-bridge --rules mock-rules.json -- \(test)   # the unit test, against the mock bridge
            miniapp mock-bridge --rules mock-rules.json --log .        # the program, no daemon (calls on stderr)
            miniapp dev .                                              # simulator: jailed, hot reload on save
            ```

            `mock-rules.json` answers the host methods (`payment.pay`); `storage.*` and `system.info` are built
            into the mock. The manifest has no `signature`: `miniapp pack . --key KEY --out app.zip` signs it for
            a real daemon.

            """
    }

    static let nodeMain = """
        'use strict';
        // The program: `run(bridge)` is what the unit test calls with a mock; in a worker the
        // daemon provides the `MiniAppBridge` global.
        async function run(bridge) {
          const info = await bridge.call('system.info');
          console.log(`hello from ${info.programId} ${info.version}`);
          const visits = ((await bridge.call('storage.get', { key: 'visits' })).value || 0) + 1;
          await bridge.call('storage.set', { key: 'visits', value: visits });
          const paid = await bridge.call('payment.pay', { orderId: `order-${visits}`, amount: 9.99, currency: 'USD' });
          console.log(`visit ${visits}: paid, transaction ${paid.transactionId}`);
          return { visits, transactionId: paid.transactionId };
        }

        module.exports = { run };

        if (require.main === module) {
          run(MiniAppBridge).catch((err) => {
            console.error(`${err.code}: ${err.message}`);
            process.exitCode = 1;
          });
        }

        """

    static let nodeTest = """
        'use strict';
        // Run it against the mock bridge: miniapp mock-bridge --rules mock-rules.json -- node test.js
        const assert = require('assert');
        const { createMockBridge } = require('miniapp-bridge-mock');
        const { run } = require('./main.js');

        (async () => {
          // The SDK over fd 3, answered by `miniapp mock-bridge`; an in-process mock otherwise.
          const bridge = typeof MiniAppBridge === 'object' ? MiniAppBridge : createMockBridge(require('./mock-rules.json'));
          const first = await run(bridge);
          assert.deepStrictEqual(first, { visits: 1, transactionId: 'tx-mock-1' });
          assert.strictEqual((await run(bridge)).visits, 2);
          const declined = createMockBridge({ rules: [{ method: 'payment.pay', error: { code: 'PERMISSION_DENIED', message: 'no payment' } }] });
          await assert.rejects(run(declined), (err) => err.code === 'PERMISSION_DENIED');
          console.log('ok: 3 checks passed');
        })().catch((err) => {
          console.error('FAIL:', err);
          process.exitCode = 1;
        });

        """

    static let pythonMain = """
        \"\"\"The program: `run(bridge)` is what the unit test calls with a mock.\"\"\"
        import sys

        import miniapp_bridge


        def run(bridge):
            info = bridge.call("system.info")
            print(f"hello from {info['programId']} {info['version']}", flush=True)
            visits = (bridge.call("storage.get", {"key": "visits"})["value"] or 0) + 1
            bridge.call("storage.set", {"key": "visits", "value": visits})
            paid = bridge.call("payment.pay", {"orderId": f"order-{visits}", "amount": 9.99, "currency": "USD"})
            print(f"visit {visits}: paid, transaction {paid['transactionId']}", flush=True)
            return {"visits": visits, "transactionId": paid["transactionId"]}


        if __name__ == "__main__":
            try:
                run(miniapp_bridge.default_bridge())
            except miniapp_bridge.BridgeError as err:
                print(f"{err.code}: {err.message}", file=sys.stderr)
                sys.exit(1)

        """

    static let pythonTest = """
        \"\"\"Run it against the mock bridge: miniapp mock-bridge --rules mock-rules.json -- python3 test_main.py\"\"\"
        import os
        import unittest

        import miniapp_bridge
        from miniapp_bridge import mock

        import main


        class MainTest(unittest.TestCase):
            def test_counts_visits_and_pays(self):
                # The SDK over fd 3, answered by `miniapp mock-bridge`; an in-process mock otherwise.
                bridge = miniapp_bridge.default_bridge() if "MINIAPP_BRIDGE_FD" in os.environ else mock.MockBridge.from_file("mock-rules.json")
                self.assertEqual(main.run(bridge), {"visits": 1, "transactionId": "tx-mock-1"})
                self.assertEqual(main.run(bridge)["visits"], 2)

            def test_declined_payment_raises(self):
                declined = mock.MockBridge({"rules": [{"method": "payment.pay", "error": {"code": "PERMISSION_DENIED", "message": "no payment"}}]})
                with self.assertRaises(miniapp_bridge.BridgeError) as caught:
                    main.run(declined)
                self.assertEqual(caught.exception.code, "PERMISSION_DENIED")


        if __name__ == "__main__":
            unittest.main()

        """

    static let shellMain = """
        #!/bin/sh
        # A native program: JSON-RPC lines on fd 3 (MINIAPP_BRIDGE_FD), one call at a time.
        set -eu
        call() { # METHOD PARAMS -> the answer line
          printf '{"jsonrpc":"2.0","id":1,"method":"%s","params":%s}\\n' "$1" "$2" >&3
          IFS= read -r answer <&3
          case "$answer" in *'"error"'*) echo "$1 failed: $answer" >&2; exit 1 ;; esac
          printf '%s\\n' "$answer"
        }
        info=$(call system.info '{}')
        echo "hello from $(printf '%s' "$info" | sed 's/.*"programId":"\\([^"]*\\)".*/\\1/')"
        visits=$(call storage.get '{"key":"visits"}' | sed -n 's/.*"value":\\([0-9][0-9]*\\).*/\\1/p')
        visits=$(( ${visits:-0} + 1 ))
        call storage.set "{\\"key\\":\\"visits\\",\\"value\\":$visits}" >/dev/null
        paid=$(call payment.pay "{\\"orderId\\":\\"order-$visits\\",\\"amount\\":9.99,\\"currency\\":\\"USD\\"}")
        echo "visit $visits: paid, transaction $(printf '%s' "$paid" | sed 's/.*"transactionId":"\\([^"]*\\)".*/\\1/')"

        """

    static let shellTest = """
        #!/bin/sh
        # Run it against the mock bridge: miniapp mock-bridge --rules mock-rules.json -- sh test.sh
        set -eu
        cd "$(dirname "$0")"
        first=$(sh ./main.sh)
        second=$(sh ./main.sh)
        printf '%s\\n' "$first" | grep -q 'visit 1: paid, transaction tx-mock-1' || { echo "FAIL: $first"; exit 1; }
        printf '%s\\n' "$second" | grep -q 'visit 2:' || { echo "FAIL: $second"; exit 1; }
        echo 'ok: 2 checks passed'

        """
}
