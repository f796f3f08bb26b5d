# expect: output_limit_exceeded
# Both streams at once, from several processes.
yes out &
yes out &
yes err >&2 &
yes err >&2
