// Module MiniAppPackages: see README 'Source layout'.
