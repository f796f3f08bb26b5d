# expect: output_limit_exceeded
yes "flood flood flood flood flood flood flood flood"
