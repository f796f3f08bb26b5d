# expect: failed
# must-contain: partial output
# must-contain: RuntimeError: deliberate
print("partial output")
raise RuntimeError("deliberate")
