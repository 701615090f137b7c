// Module MiniAppJail: see README 'Source layout'.
