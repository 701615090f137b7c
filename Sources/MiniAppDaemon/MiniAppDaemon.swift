// Module MiniAppDaemon: see README 'Source layout'.
