# expect: output_limit_exceeded
# Many short unbuffered writes (a line of 80 characters each), the way most chatty scripts print:
# the cap must count them all, under every runtime.
while True:
    print("x" * 80)
