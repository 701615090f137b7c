print("miniappd: not yet implemented")
