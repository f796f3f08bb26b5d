# expect: completed
# must-contain: read returned 1
# must-contain: script intact
# must-not-contain: LEAK
# Reading stdin to its end must not eat the script: the script is a file, not the shell's stdin.
read -r line
echo "read returned $?"
rest=$(cat)
[ -n "$rest" ] && echo "LEAK: stdin held something: $rest"
echo "script intact"
