// Module MiniAppTestSupport: see README 'Source layout'.
