// The control client (`ControlClient`, a facade over the MiniAppHost library) for every file of
// the CLI: it used to come with `import MiniAppDaemon`.
@_exported import MiniAppControl
