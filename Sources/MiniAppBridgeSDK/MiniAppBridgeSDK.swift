// Module MiniAppBridgeSDK: see README 'Source layout'.
