// `ControlClient` (the MiniAppHost facade) for every file of the test support and for the
// tests that import it: it used to come with `import MiniAppDaemon`.
@_exported public import MiniAppControl
