# expect: completed
# must-contain: orphans made
# must-not-contain: LATE
# Orphans via subshells that exit at once, leaving their sleeping children to PID 1.
for i in 1 2 3 4 5; do
  ( ( sleep 1.5; echo "LATE from orphan $i"; sleep 60 ) & )
done
for i in 1 2 3 4 5; do
  ( exit 0 ) &
done
echo "orphans made"
