# expect: output_limit_exceeded
# One large write on each stream at once, from two processes, then exit 0.
head -c 33554432 /dev/zero | tr '\0' 'o' &
head -c 33554432 /dev/zero | tr '\0' 'e' >&2
wait
exit 0
