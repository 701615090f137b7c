print("miniapp: not yet implemented")
