import MiniAppJSON
print("fuzz-json placeholder")
