# expect: completed
# must-contain: environment dumped
# must-not-contain: SECRET_KEY
# must-not-contain: REDIS_URL
# must-not-contain: DATABASE_URL
# must-not-contain: DJANGO_SETTINGS_MODULE
# must-not-contain: PASSWORD
env
set
tr '\0' '\n' < /proc/1/environ
tr '\0' ' ' < /proc/1/cmdline; echo
cat /proc/self/mountinfo /etc/hosts /etc/resolv.conf /etc/hostname 2>&1
echo "environment dumped"
