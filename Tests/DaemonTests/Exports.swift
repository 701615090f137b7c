// `ControlClient` for every test file: it used to come with `import MiniAppDaemon`.
@_exported import MiniAppControl
