# expect: completed
:
