# expect: output_limit_exceeded
yes "error error error error error error error error" >&2
